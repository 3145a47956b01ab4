//! The one JSON dispatch table: method name + params object → result object or `{code, desc}`.
//! The C ABI, the daemon and the tests all come through here. Each area of the API (account,
//! messages, conversations, groups, relationships...) is one module owning its method names,
//! its parameter validation and the mapping to its actor's messages; this module only routes.

mod account;
mod community;
mod conversation;
mod group;
mod media;
mod message;
mod params;
mod push;
mod relationship;
mod signaling;
mod system;
mod translation;

use chime_proto::codes;
use serde_json::{Value, json};

use crate::actors::Peers;
use crate::events::EventBus;
use crate::session::LoginStatus;
use crate::{ApiError, Result};

/// One area of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Area {
    Account,
    Message,
    Media,
    Conversation,
    Group,
    Community,
    Relationship,
    Signaling,
    Push,
    System,
    Translation,
}

/// Every area with its method names and the ones that work before login.
const AREAS: &[(Area, &[&str], &[&str])] = &[
    (Area::Account, account::METHODS, account::PRE_LOGIN),
    (Area::Message, message::METHODS, message::PRE_LOGIN),
    (Area::Media, media::METHODS, media::PRE_LOGIN),
    (
        Area::Conversation,
        conversation::METHODS,
        conversation::PRE_LOGIN,
    ),
    (Area::Group, group::METHODS, group::PRE_LOGIN),
    (Area::Community, community::METHODS, community::PRE_LOGIN),
    (
        Area::Relationship,
        relationship::METHODS,
        relationship::PRE_LOGIN,
    ),
    (Area::Signaling, signaling::METHODS, signaling::PRE_LOGIN),
    (Area::Push, push::METHODS, push::PRE_LOGIN),
    (Area::System, system::METHODS, system::PRE_LOGIN),
    (
        Area::Translation,
        translation::METHODS,
        translation::PRE_LOGIN,
    ),
];

/// The area answering `method` and whether it needs a logged-in account.
fn route(method: &str) -> Option<(Area, bool)> {
    AREAS
        .iter()
        .find(|(_, methods, _)| methods.contains(&method))
        .map(|(area, _, pre)| (*area, !pre.contains(&method)))
}

/// Every method name of the table (for `docs` and tests).
pub fn method_names() -> impl Iterator<Item = &'static str> {
    AREAS.iter().flat_map(|(_, m, _)| m.iter().copied())
}

/// Calls one method.
pub async fn dispatch(peers: &Peers, events: &EventBus, method: &str, p: Value) -> Result<Value> {
    let p = if p.is_null() { json!({}) } else { p };
    if !p.is_object() {
        return Err(ApiError::invalid_param("params must be an object"));
    }
    let Some((area, needs_login)) = route(method) else {
        return Err(ApiError::invalid_param(format!("unknown method: {method}")));
    };
    // The published status, not a round trip through the ConnectionActor's mailbox.
    if needs_login && peers.status.get() == LoginStatus::Logout {
        return Err(ApiError::new(codes::ERR_SDK_NOT_LOGGED_IN, "not logged in"));
    }
    let mut out = match area {
        Area::Account => account::call(peers, events, method, p).await,
        Area::Message => message::call(peers, events, method, p).await,
        Area::Media => media::call(peers, events, method, p).await,
        Area::Conversation => conversation::call(peers, events, method, p).await,
        Area::Group => group::call(peers, events, method, p).await,
        Area::Community => community::call(peers, events, method, p).await,
        Area::Relationship => relationship::call(peers, events, method, p).await,
        Area::Signaling => signaling::call(peers, events, method, p).await,
        Area::Push => push::call(peers, events, method, p).await,
        Area::System => system::call(peers, events, method, p).await,
        Area::Translation => translation::call(peers, events, method, p).await,
    }?;
    // Message objects in results carry the caller's current friend remark for their sender.
    if matches!(area, Area::Message | Area::Conversation) {
        events.remarks().annotate(&mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_belongs_to_exactly_one_area() {
        let mut seen = std::collections::BTreeSet::new();
        for m in method_names() {
            assert!(seen.insert(m), "{m} is listed twice");
        }
        for (_, methods, pre) in AREAS {
            for p in *pre {
                assert!(
                    methods.contains(p),
                    "{p} is pre-login but not a method of its area"
                );
            }
        }
        assert_eq!(route("login"), Some((Area::Account, false)));
        assert_eq!(route("send_message"), Some((Area::Message, true)));
        assert_eq!(route("create_text_message"), Some((Area::Message, false)));
        assert_eq!(route("no_such_method"), None);
    }
}
