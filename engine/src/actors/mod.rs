//! The engine's actors (ARCHITECTURE.md §2), each the only owner of its slice of state and the
//! only writer of its store tables, and the messages they share.

pub mod community;
pub mod connection;
pub mod conversation;
pub mod group;
pub mod group_events;
pub mod message;
pub mod relationship;
pub mod signaling;

use std::sync::Arc;

use actix::prelude::*;

use crate::EngineConfig;
use crate::events::EventBus;
use crate::store::Store;

/// What every actor gets at start: the config and the event queue.
#[derive(Clone)]
pub struct Shared {
    /// The engine config.
    pub config: Arc<EngineConfig>,
    /// The event queue.
    pub events: EventBus,
}

/// The logged-in account: its user id and its store.
#[derive(Clone)]
pub struct Account {
    /// The login user.
    pub user: String,
    /// The account's store.
    pub store: Arc<dyn Store>,
}

/// The addresses of all actors, and the engine services every part may use.
#[derive(Clone)]
pub struct Peers {
    /// ConnectionActor.
    pub conn: Addr<connection::ConnectionActor>,
    /// MessageActor.
    pub msg: Addr<message::MessageActor>,
    /// ConversationActor.
    pub conv: Addr<conversation::ConversationActor>,
    /// GroupActor.
    pub group: Addr<group::GroupActor>,
    /// RelationshipActor.
    pub rel: Addr<relationship::RelationshipActor>,
    /// The login status the ConnectionActor publishes (the dispatch table's login check).
    pub status: connection::StatusCell,
    /// The engine's logging (`set_log_level`, the log listener): not an actor, but reached by
    /// the dispatch table like one.
    pub log: Arc<crate::logging::EngineLog>,
    /// The engine's plugins (content filters before the outbox, transport, uploader,
    /// `get_loaded_plugins`).
    pub plugins: Arc<crate::plugins::Plugins>,
}

/// An account was opened: load its state.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct OpenAccount(pub Account);

/// The account is being closed (logout, kick, switch, shutdown): flush and drop the store.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseAccount;

/// The connection is up and logged in (connection epoch).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Online(pub u64);

/// The connection went down.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Offline;

/// Current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Maps a store failure to the API's 6019.
pub fn db_err(e: crate::store::StoreError) -> crate::ApiError {
    crate::ApiError::new(chime_proto::codes::ERR_DATABASE, e.to_string())
}

/// Decodes a stored prost value.
pub fn decode<T: prost::Message + Default>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, crate::store::StoreError> {
    T::decode(bytes).map_err(|e| crate::store::StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// The ids seen lately, at most a bounded number (the oldest forgotten first): the dedupe of
/// things that may be handed over more than once.
#[derive(Debug, Default)]
pub struct RecentIds {
    set: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl RecentIds {
    /// Whether `id` was not seen lately; remembers it, keeping at most `cap` ids.
    pub fn first_sight(&mut self, id: &str, cap: usize) -> bool {
        if !self.set.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        while self.order.len() > cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod recent_ids_tests {
    use super::RecentIds;

    #[test]
    fn an_id_is_new_once_until_it_is_forgotten() {
        let mut r = RecentIds::default();
        assert!(r.first_sight("a", 2));
        assert!(!r.first_sight("a", 2));
        assert!(r.first_sight("b", 2));
        assert!(r.first_sight("c", 2));
        // "a" was forgotten to keep two.
        assert!(r.first_sight("a", 2));
        assert!(!r.first_sight("c", 2));
    }
}
