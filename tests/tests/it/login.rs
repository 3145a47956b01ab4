//! Login end to end: UserSig errors as the server reports them through the engine, the 6013 /
//! 6014 guards, the login status and user transitions, logout and account switching.

use std::time::Duration;

use chime_engine::Sdk;
use chime_proto::codes;
use chime_server::usersig;
use chime_tests::{APP_ID, APP_KEY, APP2_ID, TestClient, TestServer, user_sig_for};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

async fn login_code(client: &TestClient, user: &str, sig: &str) -> i32 {
    match client.login_with(user, sig).await {
        Ok(v) => panic!("login of {user} succeeded with {v}; an error was expected"),
        Err(e) => e.code,
    }
}

async fn status(client: &TestClient) -> String {
    let v = client.ok("get_login_status", json!({})).await;
    v["status"].as_str().unwrap_or_default().to_owned()
}

async fn login_user(client: &TestClient) -> String {
    let v = client.ok("get_login_user", json!({})).await;
    v["user_id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn login_with_a_signature_of_another_key_answers_70003() {
    let server = TestServer::start().await;
    let client = TestClient::new(&server).await;
    let sig = usersig::gen_user_sig(APP_ID, "not-the-app-key", "alice", 86_400);
    assert_eq!(
        login_code(&client, "alice", &sig).await,
        codes::ERR_SVR_USER_SIG_INVALID
    );
    assert_eq!(status(&client).await, "logout");
    assert_eq!(login_user(&client).await, "");
}

#[tokio::test]
async fn login_with_an_expired_signature_answers_70001() {
    let server = TestServer::start().await;
    let client = TestClient::new(&server).await;
    let issued = usersig::now_secs() - 3_600;
    let sig = usersig::gen_user_sig_at(APP_ID, APP_KEY, "alice", 60, issued, None);
    assert_eq!(
        login_code(&client, "alice", &sig).await,
        codes::ERR_SVR_USER_SIG_EXPIRED
    );
    assert_eq!(status(&client).await, "logout");
}

#[tokio::test]
async fn login_with_another_users_signature_answers_70013() {
    let server = TestServer::start().await;
    let client = TestClient::new(&server).await;
    let sig = server.user_sig("bob");
    assert_eq!(
        login_code(&client, "alice", &sig).await,
        codes::ERR_SVR_USER_SIG_IDENTIFIER_MISMATCH
    );
}

#[tokio::test]
async fn login_with_another_apps_signature_answers_70014() {
    let server = TestServer::start().await;
    let client = TestClient::new(&server).await;
    let sig = user_sig_for(APP2_ID, "alice", 86_400);
    assert_eq!(
        login_code(&client, "alice", &sig).await,
        codes::ERR_SVR_USER_SIG_APP_MISMATCH
    );
}

#[tokio::test]
async fn login_to_an_unknown_app_answers_70020() {
    let server = TestServer::start().await;
    let unknown_app = 1_400_000_099u64;
    let client = TestClient::with_config(&server, json!({ "sdk_app_id": unknown_app })).await;
    let sig = usersig::gen_user_sig(unknown_app, APP_KEY, "alice", 86_400);
    assert_eq!(
        login_code(&client, "alice", &sig).await,
        codes::ERR_SVR_INVALID_SDK_APP_ID
    );
}

/// An empty UserSig never leaves the engine: 6017 naming the field (the server would answer
/// 70002; its unit tests pin that).
#[tokio::test]
async fn login_with_an_empty_signature_answers_6017_naming_user_sig() {
    let server = TestServer::start().await;
    let client = TestClient::new(&server).await;
    let err = client
        .login_with("alice", "")
        .await
        .expect_err("an empty UserSig must be refused");
    assert_eq!(err.code, codes::ERR_INVALID_PARAMETERS, "{err}");
    assert!(
        err.desc.contains("user_sig"),
        "desc {:?} does not name user_sig",
        err.desc
    );
    assert_eq!(status(&client).await, "logout");
}

#[tokio::test]
async fn login_with_an_invalid_user_id_answers_7003() {
    let server = TestServer::start().await;
    let client = TestClient::new(&server).await;
    let long_id = "u".repeat(33);
    let sig = server.user_sig(&long_id);
    assert_eq!(
        login_code(&client, &long_id, &sig).await,
        codes::ERR_INVALID_USER_ID
    );
}

#[tokio::test]
async fn calls_before_init_sdk_answer_6013() {
    let sdk = Sdk::new();
    for method in [
        "login",
        "get_login_status",
        "send_message",
        "get_conversation_list",
    ] {
        let err = sdk
            .call(method, json!({}))
            .await
            .expect_err("a call before init_sdk must fail");
        assert_eq!(err.code, codes::ERR_SDK_NOT_INITIALIZED, "{method}: {err}");
    }
}

#[tokio::test]
async fn calls_needing_login_answer_6014_before_login() {
    let server = TestServer::start().await;
    let client = TestClient::new(&server).await;
    let cases = [
        (
            "send_c2c_text_message",
            json!({ "text": "hi", "user_id": "bob" }),
        ),
        (
            "get_conversation_list",
            json!({ "next_seq": 0, "count": 10 }),
        ),
        ("get_total_unread_message_count", json!({})),
        (
            "get_c2c_history_message_list",
            json!({ "user_id": "bob", "count": 10 }),
        ),
        ("get_joined_group_list", json!({})),
    ];
    for (method, params) in cases {
        assert_eq!(
            client.err_code(method, params).await,
            codes::ERR_SDK_NOT_LOGGED_IN,
            "{method} before login"
        );
    }
}

#[tokio::test]
async fn login_status_goes_logout_logined_logout() {
    let server = TestServer::start().await;
    let client = TestClient::new(&server).await;
    assert_eq!(status(&client).await, "logout");
    assert_eq!(login_user(&client).await, "");

    client.login("alice").await;
    assert_eq!(status(&client).await, "logined");
    assert_eq!(login_user(&client).await, "alice");
    client.expect_event("on_connect_success", WAIT).await;

    let time = client.ok("get_server_time", json!({})).await;
    let server_time = time["server_time"].as_i64().unwrap_or(0);
    let now = usersig::now_secs();
    assert!(
        (server_time - now).abs() <= 5,
        "server_time {server_time} is not within 5 s of the local clock {now}"
    );

    client.ok("logout", json!({})).await;
    assert_eq!(status(&client).await, "logout");
    assert_eq!(login_user(&client).await, "");
    assert_eq!(
        client
            .err_code(
                "send_c2c_text_message",
                json!({ "text": "hi", "user_id": "bob" })
            )
            .await,
        codes::ERR_SDK_NOT_LOGGED_IN
    );
}

#[tokio::test]
async fn login_as_another_user_switches_account() {
    let server = TestServer::start().await;
    let client = TestClient::new(&server).await;
    client.login("alice").await;
    assert_eq!(login_user(&client).await, "alice");
    client.login("carol").await;
    assert_eq!(login_user(&client).await, "carol");
    assert_eq!(status(&client).await, "logined");

    // The switched-to account really is carol on the server: a message to carol arrives.
    let bob = TestClient::new(&server).await;
    bob.login("bob").await;
    bob.ok(
        "send_c2c_text_message",
        json!({ "text": "to carol", "user_id": "carol" }),
    )
    .await;
    let got = client.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["sender"], json!("bob"));
    assert_eq!(chime_tests::text_of(&got[0]), "to carol");
}

#[tokio::test]
async fn get_version_answers_the_engine_version() {
    let server = TestServer::start().await;
    let client = TestClient::new(&server).await;
    let v = client.ok("get_version", json!({})).await;
    assert_eq!(v["version"], json!(chime_engine::VERSION));
}

#[tokio::test]
async fn the_usersig_subcommand_prints_a_token_that_logs_in() {
    let server = TestServer::start().await;
    let bin = chime_tests::workspace_binary("chime-server", "CHIME_SERVER_BIN");
    let out = tokio::process::Command::new(bin)
        .args([
            "usersig",
            "--sdk-app-id",
            &APP_ID.to_string(),
            "--key",
            APP_KEY,
        ])
        .args(["--user-id", "dora", "--expire", "3600"])
        .output()
        .await
        .expect("run chime-server usersig");
    assert!(out.status.success(), "usersig failed: {out:?}");
    let sig = String::from_utf8(out.stdout).expect("utf-8 token");
    let sig = sig.trim();
    let doc = usersig::decode_json(sig).expect("the printed token decodes");
    assert_eq!(doc["TLS.identifier"], json!("dora"));
    assert_eq!(doc["TLS.sdkappid"], json!(APP_ID));
    assert_eq!(doc["TLS.expire"], json!(3600));
    let client = TestClient::new(&server).await;
    client
        .login_with("dora", sig)
        .await
        .unwrap_or_else(|e| panic!("login with the printed token failed: {e}"));
    assert_eq!(login_user(&client).await, "dora");
}
