//! The server's cache of verified UserSigs (`server/src/usersig.rs`, `VerifiedCache`) end to
//! end, over raw connections: a token that already passed logs in again, and the checks that
//! depend on the login user and the clock still answer exactly as a fresh verification does —
//! another user presenting it gets 70013, and once it has expired it gets 70001.

use std::time::Duration;

use chime_proto::codes;
use chime_server::usersig;
use chime_tests::wire::{WireClient, WireError};
use chime_tests::{APP_ID, APP_KEY, TestServer};

/// The login's refusal code, or a panic if it logged in.
async fn refused(url: &str, user: &str, sig: &str) -> i32 {
    match WireClient::login(url, APP_ID, user, sig, "dev").await {
        Ok(_) => panic!("{user} logged in; a refusal was expected"),
        Err(WireError::Refused { code, .. }) => code,
        Err(e) => panic!("{user}: {e}"),
    }
}

#[tokio::test]
async fn a_token_that_passed_is_still_checked_for_its_user_and_its_expiry() {
    let server = TestServer::start().await;
    let url = server.ws_url();
    let issued = usersig::now_secs();
    let sig = usersig::gen_user_sig_at(APP_ID, APP_KEY, "alice", 5, issued, None);
    let first = WireClient::login(&url, APP_ID, "alice", &sig, "phone")
        .await
        .expect("first login");
    // The same token again (now from the cache), from another device of the same user.
    let second = WireClient::login(&url, APP_ID, "alice", &sig, "laptop")
        .await
        .expect("second login with the same token");
    assert_eq!(
        refused(&url, "bob", &sig).await,
        codes::ERR_SVR_USER_SIG_IDENTIFIER_MISMATCH
    );
    drop((first, second));
    // Past `time + expire` (the last valid second), the cached token is refused as expired.
    let expire_at = issued + 5;
    let wait = u64::try_from(expire_at + 1 - usersig::now_secs()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(wait * 1000 + 200)).await;
    assert!(usersig::now_secs() > expire_at);
    assert_eq!(
        refused(&url, "alice", &sig).await,
        codes::ERR_SVR_USER_SIG_EXPIRED
    );
    // A fresh token for the same user still logs in.
    WireClient::login(&url, APP_ID, "alice", &server.user_sig("alice"), "phone")
        .await
        .expect("login with a new token");
}

#[tokio::test]
async fn a_token_that_failed_fails_again_and_a_good_one_for_the_same_user_passes() {
    let server = TestServer::start().await;
    let url = server.ws_url();
    let forged = usersig::gen_user_sig(APP_ID, "not-the-app-key", "carol", 86_400);
    for _ in 0..2 {
        assert_eq!(
            refused(&url, "carol", &forged).await,
            codes::ERR_SVR_USER_SIG_INVALID
        );
    }
    let sig = server.user_sig("carol");
    for device in ["a", "b"] {
        WireClient::login(&url, APP_ID, "carol", &sig, device)
            .await
            .expect("login with the app's token");
    }
    assert_eq!(
        refused(&url, "dave", &sig).await,
        codes::ERR_SVR_USER_SIG_IDENTIFIER_MISMATCH
    );
}
