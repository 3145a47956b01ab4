//! Offline push methods (api.md §4.6, docs/push.md): `set_offline_push_config {business_id,
//! token, is_tpns_token?}`, `do_background {unread_count?}`, `do_foreground`. Each is device
//! state the server keeps per connection, so each goes through the connection's
//! [`SessionRequest`]: remembered, sent now when connected, and sent again after every
//! reconnect and login (the server forgets the device at logout and a connection's background
//! flag with the connection). They work before login too: the state goes out with the login.
//! The per-message side of offline push is `send_message`'s `offline_push_info`, carried in the
//! message itself (`codec`).

use serde_json::{Value, json};

use chime_proto::pb::{self, request::Kind as ReqKind};

use super::params::*;
use crate::actors::Peers;
use crate::actors::connection::SessionRequest;
use crate::events::EventBus;
use crate::{ApiError, Result};

/// The methods this area answers.
pub(super) const METHODS: &[&str] = &["set_offline_push_config", "do_background", "do_foreground"];

/// The methods of this area that work before login.
pub(super) const PRE_LOGIN: &[&str] = METHODS;

/// Longest device token accepted (the server's limit).
const MAX_TOKEN_BYTES: usize = 1024;

/// The push token request of `set_offline_push_config`'s params.
fn config_request(p: &Value) -> Result<pb::SetPushConfigReq> {
    let business_id = u32::try_from(opt_u64(p, "business_id")?)
        .map_err(|_| ApiError::invalid_param("business_id is too large"))?;
    let token = req_str(p, "token")?;
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(ApiError::invalid_param("token must be 1..=1024 bytes"));
    }
    Ok(pb::SetPushConfigReq {
        business_id,
        token,
        is_tpns_token: opt_bool(p, "is_tpns_token")?,
    })
}

/// The app state request of `do_background` / `do_foreground`.
fn state_request(background: bool, p: &Value) -> Result<pb::SetAppStateReq> {
    let unread_count = match p.get("unread_count") {
        None | Some(Value::Null) => None,
        Some(_) => Some(
            u32::try_from(opt_u64(p, "unread_count")?)
                .map_err(|_| ApiError::invalid_param("unread_count is too large"))?,
        ),
    };
    Ok(pb::SetAppStateReq {
        background,
        unread_count: unread_count.filter(|_| background),
    })
}

/// Calls one method of this area.
pub(super) async fn call(
    peers: &Peers,
    _events: &EventBus,
    method: &str,
    p: Value,
) -> Result<Value> {
    let (key, kind) = match method {
        "set_offline_push_config" => ("push_config", ReqKind::SetPushConfig(config_request(&p)?)),
        "do_background" => ("app_state", ReqKind::SetAppState(state_request(true, &p)?)),
        "do_foreground" => ("app_state", ReqKind::SetAppState(state_request(false, &p)?)),
        _ => return Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    };
    peers
        .conn
        .send(SessionRequest { key, kind })
        .await
        .map_err(mailbox)??;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        let r = config_request(&json!({"business_id": 7, "token": "abc"})).unwrap();
        assert_eq!(
            (r.business_id, r.token.as_str(), r.is_tpns_token),
            (7, "abc", false)
        );
        for bad in [
            json!({"business_id": 7}),
            json!({"business_id": 7, "token": ""}),
            json!({"business_id": -1, "token": "a"}),
            json!({"business_id": 7, "token": "a".repeat(1025)}),
        ] {
            assert_eq!(
                config_request(&bad).unwrap_err().code,
                chime_proto::codes::ERR_INVALID_PARAMETERS,
                "{bad}"
            );
        }
        let s = state_request(true, &json!({"unread_count": 5})).unwrap();
        assert_eq!((s.background, s.unread_count), (true, Some(5)));
        assert_eq!(state_request(true, &json!({})).unwrap().unread_count, None);
        assert_eq!(
            state_request(false, &json!({"unread_count": 5}))
                .unwrap()
                .unread_count,
            None
        );
        assert!(state_request(true, &json!({"unread_count": "x"})).is_err());
    }
}
