//! User and relationship methods (api.md §4.5).

use serde_json::Value;

use super::params::*;
use crate::actors::Peers;
use crate::actors::relationship::UsersInfo;
use crate::codec;
use crate::events::EventBus;
use crate::{ApiError, Result};

/// The methods this area answers.
pub(super) const METHODS: &[&str] = &["get_users_info"];

/// The methods of this area that work before login.
pub(super) const PRE_LOGIN: &[&str] = &[];

/// Calls one method of this area.
pub(super) async fn call(
    peers: &Peers,
    _events: &EventBus,
    method: &str,
    p: Value,
) -> Result<Value> {
    match method {
        "get_users_info" => {
            let ids = codec::string_list(&p, "user_ids")?;
            peers.rel.send(UsersInfo(ids)).await.map_err(mailbox)?
        }
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}
