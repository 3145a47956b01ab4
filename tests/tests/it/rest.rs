//! The REST admin API end to end: a real server's HTTP endpoint called as the app's backend
//! would (`/v4/<service>/<command>?sdkappid=&identifier=&usersig=&random=&contenttype=json`),
//! with real engines observing the effects: authentication failures, accounts, online state,
//! kick, C2C / batch / group / broadcast / push-to-all messages, groups and profiles, and the
//! history imports (C2C and group) with their original times.

use std::time::Duration;

use chime_tests::{APP_ID, APP2_ID, TestClient, TestServer, text_of, total_unread, user_sig_for};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(600);
const ADMIN: &str = "administrator";

/// Calls `api` as `identifier` of `app` with `usersig`.
async fn call_as(
    server: &TestServer,
    app: &str,
    identifier: &str,
    usersig: &str,
    api: &str,
    body: &str,
) -> Value {
    let url = format!(
        "{}/v4/{api}?sdkappid={app}&identifier={identifier}&usersig={usersig}&random=42&contenttype=json",
        server.http_url()
    );
    let resp = reqwest::Client::new()
        .post(url)
        .body(body.to_owned())
        .timeout(WAIT)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {api}: {e}"));
    assert_eq!(resp.status(), 200, "{api}");
    resp.json::<Value>()
        .await
        .unwrap_or_else(|e| panic!("{api}: answer is not JSON: {e}"))
}

/// Calls `api` as the administrator of `APP_ID` (asserts HTTP 200).
pub(crate) async fn rest(server: &TestServer, api: &str, body: Value) -> Value {
    let sig = user_sig_for(APP_ID, ADMIN, 3600);
    call_as(
        server,
        &APP_ID.to_string(),
        ADMIN,
        &sig,
        api,
        &body.to_string(),
    )
    .await
}

/// Calls `api` and asserts success.
async fn rest_ok(server: &TestServer, api: &str, body: Value) -> Value {
    let out = rest(server, api, body).await;
    assert_eq!(out["ActionStatus"], "OK", "{api}: {out}");
    assert_eq!(out["ErrorCode"], 0, "{api}: {out}");
    assert_eq!(out["ErrorInfo"], "", "{api}: {out}");
    out
}

fn fail_code(out: &Value) -> i64 {
    assert_eq!(out["ActionStatus"], "FAIL", "{out}");
    out["ErrorCode"].as_i64().unwrap_or(0)
}

async fn import(server: &TestServer, users: &[&str]) {
    let out = rest_ok(
        server,
        "im_open_login_svc/multiaccount_import",
        json!({ "Accounts": users }),
    )
    .await;
    assert_eq!(out["FailAccounts"], json!([]));
}

fn text_body(text: &str) -> Value {
    json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}])
}

#[tokio::test]
async fn authentication_and_request_failures_have_rest_codes() {
    let server = TestServer::start().await;
    let app = APP_ID.to_string();
    let admin_sig = user_sig_for(APP_ID, ADMIN, 3600);
    let api = "im_open_login_svc/account_check";
    let body = r#"{"CheckItem":[]}"#;
    // Missing or non-numeric sdkappid.
    let out = call_as(&server, "", ADMIN, &admin_sig, api, body).await;
    assert_eq!(fail_code(&out), 60012);
    // Unknown app.
    let out = call_as(&server, "1", ADMIN, &admin_sig, api, body).await;
    assert_eq!(fail_code(&out), 60006);
    // Not the administrator, even with a valid UserSig of that user.
    let alice_sig = user_sig_for(APP_ID, "alice", 3600);
    let out = call_as(&server, &app, "alice", &alice_sig, api, body).await;
    assert_eq!(fail_code(&out), 60010);
    // Empty, forged, expired, other app's UserSig.
    let out = call_as(&server, &app, ADMIN, "", api, body).await;
    assert_eq!(fail_code(&out), 70002);
    let out = call_as(&server, &app, ADMIN, &alice_sig, api, body).await;
    assert_eq!(fail_code(&out), 70013);
    let other_app = user_sig_for(APP2_ID, ADMIN, 3600);
    let out = call_as(&server, &app, ADMIN, &other_app, api, body).await;
    assert_eq!(fail_code(&out), 70014);
    let expired = chime_server::usersig::gen_user_sig_at(
        APP_ID,
        chime_tests::app_key(APP_ID),
        ADMIN,
        60,
        chime_server::usersig::now_secs() - 3600,
        None,
    );
    let out = call_as(&server, &app, ADMIN, &expired, api, body).await;
    assert_eq!(fail_code(&out), 70001);
    // Authenticated, but bad requests.
    let out = call_as(&server, &app, ADMIN, &admin_sig, api, "{not json").await;
    assert_eq!(fail_code(&out), 60003);
    let out = call_as(&server, &app, ADMIN, &admin_sig, "openim/bogus", "{}").await;
    assert_eq!(fail_code(&out), 60009);
    let out = rest(&server, api, json!({"CheckItem": 5})).await;
    assert_eq!(fail_code(&out), 90002);
    assert!(out["ErrorInfo"].as_str().unwrap_or("").contains("invalid"));
    let out = rest(&server, "openim/sendmsg", json!({"To_Account": "x"})).await;
    assert_eq!(fail_code(&out), 90002);
    assert!(
        out["ErrorInfo"].as_str().unwrap_or("").contains("MsgBody"),
        "{out}"
    );
    // Every call is audited in the server log.
    let log = server.log_tail();
    assert!(
        log.contains("admin action") && log.contains("openim/bogus"),
        "{log}"
    );
}

#[tokio::test]
async fn accounts_import_check_state_and_kick() {
    let server = TestServer::start().await;
    rest_ok(
        &server,
        "im_open_login_svc/account_import",
        json!({"UserID": "carol"}),
    )
    .await;
    let out = rest(
        &server,
        "im_open_login_svc/account_import",
        json!({"UserID": ""}),
    )
    .await;
    assert_eq!(fail_code(&out), 7003);
    let out = rest_ok(
        &server,
        "im_open_login_svc/multiaccount_import",
        json!({"Accounts": ["dave", "bad id\u{1}"]}),
    )
    .await;
    assert_eq!(out["FailAccounts"], json!(["bad id\u{1}"]));
    let out = rest_ok(
        &server,
        "im_open_login_svc/account_check",
        json!({"CheckItem": [{"UserID": "carol"}, {"UserID": "dave"}, {"UserID": "nobody"}]}),
    )
    .await;
    let status: Vec<&str> = out["ResultItem"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["AccountStatus"].as_str().unwrap_or(""))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(status, ["Imported", "Imported", "NotImported"]);

    let alice = TestClient::new(&server).await;
    alice.login("alice").await;
    let out = rest_ok(
        &server,
        "openim/query_online_status",
        json!({"To_Account": ["alice", "carol"]}),
    )
    .await;
    assert_eq!(out["QueryResult"][0]["To_Account"], "alice");
    assert_eq!(out["QueryResult"][0]["Status"], "Online");
    assert_eq!(
        out["QueryResult"][0]["Detail"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(out["QueryResult"][1]["Status"], "Offline");
    assert_eq!(out["QueryResult"][1]["Detail"], json!([]));

    let out = rest(
        &server,
        "im_open_login_svc/kick",
        json!({"UserID": "nobody"}),
    )
    .await;
    assert_eq!(fail_code(&out), 70107);
    rest_ok(
        &server,
        "im_open_login_svc/kick",
        json!({"UserID": "alice"}),
    )
    .await;
    alice.expect_event("on_kicked_offline", WAIT).await;
    let out = rest_ok(
        &server,
        "openim/querystate",
        json!({"To_Account": ["alice"]}),
    )
    .await;
    assert_eq!(out["QueryResult"][0]["Status"], "Offline");
    assert_eq!(
        alice.ok("get_login_status", json!({})).await["status"],
        "logout"
    );
}

#[tokio::test]
async fn c2c_messages_as_any_user_single_batch_and_online_only() {
    let server = TestServer::start().await;
    import(&server, &["alice", "bob", "carol"]).await;
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;

    let out = rest_ok(
        &server,
        "openim/sendmsg",
        json!({"SyncOtherMachine": 2, "From_Account": "alice", "To_Account": "bob",
               "MsgRandom": 1234, "MsgBody": text_body("hi from the backend"),
               "CloudCustomData": "ccd"}),
    )
    .await;
    assert_eq!(out["MsgSeq"], 1);
    let key = out["MsgKey"].as_str().unwrap_or("");
    assert!(key.starts_with("1_1234_"), "{key}");
    assert!(out["MsgTime"].as_i64().unwrap_or(0) > 1_600_000_000);
    let got = bob.expect_event("on_recv_new_message", WAIT).await;
    let m = &got["message"];
    assert_eq!(m["sender"], "alice");
    assert_eq!(m["seq"], 1);
    assert_eq!(m["msg_id"], out["MsgId"]);
    assert_eq!(m["cloud_custom_data"], "ccd");
    assert_eq!(text_of(m), "hi from the backend");

    // Unknown sender or receiver: 70107; bad body: 90002.
    let out = rest(
        &server,
        "openim/sendmsg",
        json!({"From_Account": "ghost", "To_Account": "bob", "MsgBody": text_body("x")}),
    )
    .await;
    assert_eq!(fail_code(&out), 70107);
    let out = rest(
        &server,
        "openim/sendmsg",
        json!({"From_Account": "alice", "To_Account": "bob",
               "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {}}]}),
    )
    .await;
    assert_eq!(fail_code(&out), 90002);

    // Batch: one per receiver, failures listed.
    let out = rest_ok(
        &server,
        "openim/batchsendmsg",
        json!({"From_Account": "alice", "To_Account": ["bob", "ghost", "carol"],
               "MsgRandom": 7, "MsgBody": [{"MsgType": "TIMCustomElem",
               "MsgContent": {"Data": "d1", "Desc": "desc", "Ext": "ext"}}]}),
    )
    .await;
    assert_eq!(
        out["ErrorList"],
        json!([{"To_Account": "ghost", "ErrorCode": 70107}])
    );
    assert!(out["MsgKey"].as_str().unwrap_or("").starts_with("2_7_"));
    let got = bob.expect_event("on_recv_new_message", WAIT).await;
    assert_eq!(got["message"]["seq"], 2);
    assert_eq!(got["message"]["elem_list"][0]["data"], "d1");

    // Online only (MsgLifeTime 0): delivered now, never stored.
    let out = rest_ok(
        &server,
        "openim/sendmsg",
        json!({"From_Account": "alice", "To_Account": "bob", "MsgLifeTime": 0,
               "MsgBody": text_body("ephemeral")}),
    )
    .await;
    assert_eq!(out["MsgSeq"], 0);
    let got = bob.expect_event("on_recv_new_message", WAIT).await;
    assert_eq!(text_of(&got["message"]), "ephemeral");
    let hist = bob
        .ok(
            "get_c2c_history_message_list",
            json!({"user_id": "alice", "count": 10}),
        )
        .await;
    let texts: Vec<String> = hist["message_list"]
        .as_array()
        .map(|l| l.iter().map(text_of).collect())
        .unwrap_or_default();
    assert!(!texts.contains(&"ephemeral".to_owned()), "{texts:?}");
    assert!(
        texts.contains(&"hi from the backend".to_owned()),
        "{texts:?}"
    );

    // Carol was offline: she gets hers on login.
    let carol = TestClient::new(&server).await;
    carol.login("carol").await;
    let msgs = carol.expect_messages(1, WAIT).await;
    assert_eq!(msgs[0]["sender"], "alice");
    assert_eq!(msgs[0]["elem_list"][0]["description"], "desc");
}

#[tokio::test]
async fn groups_create_members_and_messages() {
    let server = TestServer::start().await;
    import(&server, &["alice", "bob", "carol"]).await;
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    let out = rest_ok(
        &server,
        "group_open_http_svc/create_group",
        json!({"Owner_Account": "alice", "Type": "Public", "GroupId": "g_rest",
               "Name": "REST group", "ApplyJoinOption": "FreeAccess",
               "MemberList": [{"Member_Account": "bob"}]}),
    )
    .await;
    assert_eq!(out["GroupId"], "g_rest");
    let info = bob
        .ok("get_groups_info", json!({"group_ids": ["g_rest"]}))
        .await;
    let text = info.to_string();
    assert!(
        text.contains("REST group") && text.contains("alice"),
        "{text}"
    );

    let out = rest(
        &server,
        "group_open_http_svc/create_group",
        json!({"Owner_Account": "alice", "Type": "Bogus", "Name": "x"}),
    )
    .await;
    assert_eq!(fail_code(&out), 10004);

    let out = rest_ok(
        &server,
        "group_open_http_svc/add_group_member",
        json!({"GroupId": "g_rest", "MemberList": [{"Member_Account": "carol"},
               {"Member_Account": "bob"}]}),
    )
    .await;
    assert_eq!(
        out["MemberList"],
        json!([{"Member_Account": "carol", "Result": 1}, {"Member_Account": "bob", "Result": 2}])
    );
    let out = rest(
        &server,
        "group_open_http_svc/add_group_member",
        json!({"GroupId": "no_such", "MemberList": [{"Member_Account": "carol"}]}),
    )
    .await;
    assert_eq!(fail_code(&out), 10010);

    // The administrator speaks in any group; a member may be impersonated.
    let out = rest_ok(
        &server,
        "group_open_http_svc/send_group_msg",
        json!({"GroupId": "g_rest", "Random": 9, "MsgBody": text_body("admin says hi")}),
    )
    .await;
    let first_seq = out["MsgSeq"].as_u64().unwrap_or(0);
    assert!(first_seq >= 1);
    let got = bob.expect_messages(1, WAIT).await;
    let admin_msg = got
        .iter()
        .find(|m| text_of(m) == "admin says hi")
        .cloned()
        .unwrap_or_else(|| panic!("no admin message in {got:?}"));
    assert_eq!(admin_msg["sender"], ADMIN);
    assert_eq!(admin_msg["group_id"], "g_rest");
    let out = rest_ok(
        &server,
        "group_open_http_svc/send_group_msg",
        json!({"GroupId": "g_rest", "From_Account": "carol", "MsgPriority": "High",
               "MsgBody": text_body("carol via rest")}),
    )
    .await;
    assert_eq!(out["MsgSeq"].as_u64(), Some(first_seq + 1));
    let out = rest(
        &server,
        "group_open_http_svc/send_group_msg",
        json!({"GroupId": "g_rest", "MsgPriority": "Urgent", "MsgBody": text_body("x")}),
    )
    .await;
    assert_eq!(fail_code(&out), 90002);

    rest_ok(
        &server,
        "group_open_http_svc/delete_group_member",
        json!({"GroupId": "g_rest", "MemberToDel_Account": ["carol"], "Reason": "bye"}),
    )
    .await;
    let members = bob
        .ok(
            "get_group_member_list",
            json!({"group_id": "g_rest", "filter": "all", "next_seq": 0, "count": 50}),
        )
        .await;
    let text = members.to_string();
    assert!(text.contains("bob") && !text.contains("carol"), "{text}");
    // Carol may no longer speak there.
    let out = rest(
        &server,
        "group_open_http_svc/send_group_msg",
        json!({"GroupId": "g_rest", "From_Account": "carol", "MsgBody": text_body("x")}),
    )
    .await;
    assert_eq!(fail_code(&out), 10007);
}

#[tokio::test]
async fn broadcast_to_av_chat_rooms_and_push_to_all_online_users() {
    let server = TestServer::start().await;
    import(&server, &["alice", "bob", "carol"]).await;
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    let carol = TestClient::new(&server).await;
    carol.login("carol").await;
    rest_ok(
        &server,
        "group_open_http_svc/create_group",
        json!({"Owner_Account": "alice", "Type": "AVChatRoom", "GroupId": "live1", "Name": "Live"}),
    )
    .await;
    bob.ok("join_group", json!({"group_id": "live1", "message": ""}))
        .await;
    let out = rest_ok(
        &server,
        "group_open_http_svc/send_broadcast_msg",
        json!({"Random": 5, "MsgBody": text_body("to every room")}),
    )
    .await;
    assert_eq!(out["GroupIdList"], json!(["live1"]));
    assert_eq!(out["ErrorList"], json!([]));
    let got = bob.expect_event("on_recv_new_message", WAIT).await;
    assert_eq!(got["message"]["is_broadcast_message"], true);
    assert_eq!(got["message"]["group_id"], "live1");
    assert_eq!(text_of(&got["message"]), "to every room");
    // Carol is not in the room.
    assert_eq!(carol.next_event("on_recv_new_message", QUIET).await, None);

    let out = rest_ok(
        &server,
        "all_member_push/im_push",
        json!({"From_Account": "alice", "MsgRandom": 3, "MsgBody": text_body("maintenance at 5")}),
    )
    .await;
    assert_eq!(out["UserCount"], 2);
    assert!(out["TaskId"].as_str().unwrap_or("").starts_with("push-"));
    for c in [&bob, &carol] {
        let got = c.expect_event("on_recv_new_message", WAIT).await;
        assert_eq!(text_of(&got["message"]), "maintenance at 5");
        assert_eq!(got["message"]["sender"], "alice");
    }
}

#[tokio::test]
async fn import_with_nick_and_portrait_set_change_profiles() {
    let server = TestServer::start().await;
    rest_ok(
        &server,
        "im_open_login_svc/account_import",
        json!({"UserID": "carol", "Nick": "Carol C", "FaceUrl": "https://x/c.png"}),
    )
    .await;
    rest_ok(
        &server,
        "profile/portrait_set",
        json!({"From_Account": "carol", "ProfileItem": [
            {"Tag": "Tag_Profile_IM_SelfSignature", "Value": "hello"},
            {"Tag": "Tag_Profile_IM_Gender", "Value": "Gender_Type_Female"},
            {"Tag": "Tag_Profile_IM_Level", "Value": 3}]}),
    )
    .await;
    let out = rest(
        &server,
        "profile/portrait_set",
        json!({"From_Account": "carol", "ProfileItem": [{"Tag": "Tag_Nope", "Value": 1}]}),
    )
    .await;
    assert_eq!(fail_code(&out), 90002);
    let alice = TestClient::new(&server).await;
    alice.login("alice").await;
    let info = alice
        .ok("get_users_info", json!({"user_ids": ["carol"]}))
        .await;
    let text = info.to_string();
    assert!(text.contains("Carol C"), "{text}");
    assert!(text.contains("https://x/c.png"), "{text}");
    assert!(text.contains("hello"), "{text}");
}

/// The history of `client` with `peer` (`user_id` or `group_id`), oldest first, without tips:
/// `(text, timestamp)`.
async fn history_texts(client: &TestClient, params: Value) -> Vec<(String, i64)> {
    let out = client.ok("get_history_message_list", params).await;
    let mut list: Vec<&Value> = out["message_list"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| !chime_tests::is_group_tips(m))
                .collect()
        })
        .unwrap_or_default();
    list.sort_by_key(|m| m["seq"].as_u64().unwrap_or(0));
    list.iter()
        .map(|m| (text_of(m), m["timestamp"].as_i64().unwrap_or(0)))
        .collect()
}

#[tokio::test]
async fn c2c_history_import_keeps_times_dedupes_and_pushes_nothing() {
    let server = TestServer::start().await;
    import(&server, &["ann", "ben"]).await;
    let api = "openim/importmsg";
    // Two days ago: within the history the server serves (7 days by default).
    let t0 = chime_server::usersig::now_secs() - 2 * 86_400;
    let msg = |sync: u32, from: &str, time: i64, random: u32, text: &str| {
        let to = if from == "ben" { "ann" } else { "ben" };
        json!({"SyncFromOldSystem": sync, "From_Account": from, "To_Account": to,
               "MsgRandom": random, "MsgTimeStamp": time, "MsgBody": text_body(text)})
    };
    // Only the administrator imports.
    let app = APP_ID.to_string();
    let ann_sig = user_sig_for(APP_ID, "ann", 3600);
    let body = msg(2, "ann", t0, 1, "x").to_string();
    assert_eq!(
        fail_code(&call_as(&server, &app, "ann", &ann_sig, api, &body).await),
        60010
    );
    assert_eq!(
        fail_code(&call_as(&server, &app, ADMIN, &ann_sig, api, &body).await),
        70013
    );

    // Ben is online while the history arrives: imports are pushed to nobody.
    let ben_online = TestClient::new(&server).await;
    ben_online.login("ben").await;
    // Its login sync first: a sync that lands after an import takes the imported messages in
    // as new (correctly — they are ben's history); what is checked here is that no push comes.
    ben_online.expect_event("on_sync_server_finish", WAIT).await;
    let out = rest_ok(&server, api, msg(2, "ann", t0, 1, "old one")).await;
    assert_eq!(
        (out["MsgSeq"].clone(), out["MsgTime"].clone()),
        (json!(1), json!(t0))
    );
    assert_eq!(out["MsgKey"], format!("1_1_{t0}"));
    let out = rest_ok(&server, api, msg(2, "ben", t0 + 100, 2, "old reply")).await;
    assert_eq!(out["MsgSeq"], 2);
    // The same message again is stored once: the first copy's seq.
    let out = rest_ok(&server, api, msg(2, "ann", t0, 1, "old one")).await;
    assert_eq!(out["MsgSeq"], 1);
    // A message of the migration itself (SyncFromOldSystem 1) counts as unread.
    let recent = chime_server::usersig::now_secs() - 60;
    let out = rest_ok(&server, api, msg(1, "ann", recent, 3, "while moving")).await;
    assert_eq!(
        (out["MsgSeq"].clone(), out["MsgTime"].clone()),
        (json!(3), json!(recent))
    );
    assert_eq!(
        ben_online.next_event("on_recv_new_message", QUIET).await,
        None
    );
    ben_online.shutdown().await;

    // Bad imports.
    let bad = |v: Value| async { fail_code(&rest(&server, api, v).await) };
    assert_eq!(bad(msg(3, "ann", t0, 1, "x")).await, 90002);
    assert_eq!(bad(msg(2, "ghost", t0, 1, "x")).await, 70107);
    assert_eq!(bad(msg(2, "ann", recent + 7200, 1, "future")).await, 90002);
    assert_eq!(
        bad(json!({"SyncFromOldSystem": 2, "From_Account": "ann"})).await,
        90002
    );

    // A new device of ben finds the history with its original times; only the real-time
    // import is unread.
    let ben = TestClient::new(&server).await;
    ben.login("ben").await;
    chime_tests::eventually("ben synced the imported conversation", || async {
        total_unread(&ben).await == 1
    })
    .await;
    let got = history_texts(
        &ben,
        json!({"get_type": "cloud_older", "user_id": "ann", "count": 10}),
    )
    .await;
    assert_eq!(
        got,
        [
            ("old one".to_owned(), t0),
            ("old reply".to_owned(), t0 + 100),
            ("while moving".to_owned(), recent),
        ]
    );
}

#[tokio::test]
async fn group_history_import_in_time_order_with_per_message_results() {
    let server = TestServer::start().await;
    import(&server, &["ann", "ben", "cy"]).await;
    rest_ok(
        &server,
        "group_open_http_svc/create_group",
        json!({"Owner_Account": "ann", "Type": "Public", "GroupId": "old_team", "Name": "Old",
               "MemberList": [{"Member_Account": "ben"}]}),
    )
    .await;
    let api = "group_open_http_svc/import_group_msg";
    let t0 = chime_server::usersig::now_secs() - 2 * 86_400;
    let item = |from: &str, time: i64, text: &str| json!({"From_Account": from, "SendTime": time, "Random": 7, "MsgBody": text_body(text)});
    // Only the administrator imports.
    let app = APP_ID.to_string();
    let ben_sig = user_sig_for(APP_ID, "ben", 3600);
    let body = json!({"GroupId": "old_team", "MsgList": [item("ann", t0, "x")]});
    let out = call_as(&server, &app, "ben", &ben_sig, api, &body.to_string()).await;
    assert_eq!(fail_code(&out), 60010);

    // Given out of order: stored by time; results in the request's order; a sender without
    // an account fails alone.
    let out = rest_ok(
        &server,
        api,
        json!({"GroupId": "old_team", "MsgList": [
            item("ben", t0 + 300, "third"),
            item("ann", t0 + 100, "first"),
            item("ghost", t0 + 150, "nobody"),
            item("cy", t0 + 200, "second"),
        ]}),
    )
    .await;
    let list = out["MsgList"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 4, "{out}");
    let first = list[1]["MsgSeq"].as_u64().unwrap_or(0);
    assert!(first > 0, "{out}");
    let row =
        |seq: u64, time: i64| json!({"MsgSeq": seq, "MsgTime": time, "Result": 0, "ErrorCode": 0});
    assert_eq!(list[0], row(first + 2, t0 + 300));
    assert_eq!(list[1], row(first, t0 + 100));
    assert_eq!(
        list[2],
        json!({"MsgSeq": 0, "MsgTime": t0 + 150, "Result": 1, "ErrorCode": 70107})
    );
    assert_eq!(list[3], row(first + 1, t0 + 200));
    // Imported again: already there (Result 2, the first copy's seq).
    let out = rest_ok(
        &server,
        api,
        json!({"GroupId": "old_team", "MsgList": [item("ann", t0 + 100, "first")]}),
    )
    .await;
    assert_eq!(
        out["MsgList"],
        json!([{"MsgSeq": first, "MsgTime": t0 + 100, "Result": 2, "ErrorCode": 0}])
    );
    // Whole-call failures: no such group, an AVChatRoom, too many messages.
    let fail = |v: Value| async { fail_code(&rest(&server, api, v).await) };
    let one = json!([item("ann", t0, "x")]);
    assert_eq!(
        fail(json!({"GroupId": "nope", "MsgList": one})).await,
        10010
    );
    rest_ok(
        &server,
        "group_open_http_svc/create_group",
        json!({"Owner_Account": "ann", "Type": "AVChatRoom", "GroupId": "live", "Name": "Live"}),
    )
    .await;
    assert_eq!(
        fail(json!({"GroupId": "live", "MsgList": one})).await,
        10007
    );
    let many: Vec<Value> = (0..21).map(|i| item("ann", t0 + i, "m")).collect();
    assert_eq!(
        fail(json!({"GroupId": "old_team", "MsgList": many})).await,
        90002
    );

    // A member's device finds them in time order, with their times, not unread.
    let ben = TestClient::new(&server).await;
    ben.login("ben").await;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        got = history_texts(
            &ben,
            json!({"get_type": "cloud_older", "group_id": "old_team", "count": 20}),
        )
        .await;
        if got.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        got,
        [
            ("first".to_owned(), t0 + 100),
            ("second".to_owned(), t0 + 200),
            ("third".to_owned(), t0 + 300),
        ]
    );
    assert_eq!(total_unread(&ben).await, 0);
}
