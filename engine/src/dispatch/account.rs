//! Account methods: login, logout, status, server time, version and listener switches (api.md §4.1).

use serde_json::{Value, json};

use super::params::*;
use crate::actors::Peers;
use crate::actors::connection::{GetStatus, Login, Logout, ServerTime};
use crate::events::EventBus;
use crate::session::LoginStatus;
use crate::{ApiError, Result};

/// The methods this area answers.
pub(super) const METHODS: &[&str] = &[
    "login",
    "logout",
    "get_login_user",
    "get_login_status",
    "get_server_time",
    "get_version",
    "add_simple_msg_listener",
    "remove_simple_msg_listener",
    "add_advanced_msg_listener",
    "remove_advanced_msg_listener",
];

/// The methods of this area that work before login.
pub(super) const PRE_LOGIN: &[&str] = &[
    "login",
    "logout",
    "get_login_user",
    "get_login_status",
    "get_server_time",
    "get_version",
    "add_simple_msg_listener",
    "remove_simple_msg_listener",
    "add_advanced_msg_listener",
    "remove_advanced_msg_listener",
];

/// Calls one method of this area.
pub(super) async fn call(
    peers: &Peers,
    events: &EventBus,
    method: &str,
    p: Value,
) -> Result<Value> {
    match method {
        "login" => {
            let user = user_id(&p, "user_id")?;
            let sig = req_str(&p, "user_sig")?;
            let (status, current) = peers.conn.send(GetStatus).await.map_err(mailbox)?;
            if status == LoginStatus::Logined && current != user {
                peers.conn.send(Logout).await.map_err(mailbox)??;
            }
            peers
                .conn
                .send(Login { user, sig })
                .await
                .map_err(mailbox)??;
            Ok(json!({}))
        }
        "logout" => {
            peers.conn.send(Logout).await.map_err(mailbox)??;
            Ok(json!({}))
        }
        "get_login_user" => {
            let (_, user) = peers.conn.send(GetStatus).await.map_err(mailbox)?;
            Ok(json!({ "user_id": user }))
        }
        "get_login_status" => {
            let (status, _) = peers.conn.send(GetStatus).await.map_err(mailbox)?;
            Ok(json!({ "status": status.as_str() }))
        }
        "get_server_time" => {
            let t = peers.conn.send(ServerTime).await.map_err(mailbox)?;
            Ok(json!({ "server_time": t }))
        }
        "get_version" => Ok(json!({ "version": crate::VERSION })),
        "add_simple_msg_listener" | "remove_simple_msg_listener" => {
            events.set_simple(method.starts_with("add"));
            Ok(json!({}))
        }
        "add_advanced_msg_listener" | "remove_advanced_msg_listener" => {
            events.set_advanced(method.starts_with("add"));
            Ok(json!({}))
        }
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}
