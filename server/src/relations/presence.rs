//! Online / offline status changes: when a user's first session logs in or their last session
//! ends, the users subscribed to their status get a `UserStatusPush` (the custom status set by
//! `set_self_status` is pushed by the write itself, in [`super::stage`]).

use std::sync::Arc;

use chime_proto::pb;

use super::keys;
use super::read::status;
use crate::Shared;
use crate::registry::push_frame;

/// Call after a session of `(app, user)` was registered (`login = true`) or removed: pushes the
/// user's status to their status subscribers when it flipped between online and offline.
pub fn presence_changed(shared: &Arc<Shared>, app: u64, user: &str, login: bool) {
    if !status_flipped(shared, app, user, login) {
        return;
    }
    let shared = Arc::clone(shared);
    let user = user.to_owned();
    tokio::task::spawn_blocking(move || push_status(&shared, app, &user));
}

/// Whether `(app, user)`'s online status flipped with the session just registered (`login`) or
/// removed: its first session came or its last one went.
pub fn status_flipped(shared: &Shared, app: u64, user: &str, login: bool) -> bool {
    let sessions = shared.registry.session_count(app, user);
    if login { sessions == 1 } else { sessions == 0 }
}

/// Pushes `(app, user)`'s status to the users subscribed to it. Reads the store: runs on the
/// blocking pool ([`presence_changed`]) or the session follow-up lane ([`crate::followups`]). The
/// subscribers are read first, so a user nobody watches costs one empty range read.
pub fn push_status(shared: &Shared, app: u64, user: &str) {
    let store = shared.store.as_ref();
    let (lo, hi) = keys::base(app, user, b"t").prefix_range();
    let plen = keys::prefix_len(user, b"t");
    let subscribers = match store.scan(&lo, &hi, usize::MAX, false) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("status subscribers of {user}: {e}");
            return;
        }
    };
    if subscribers.is_empty() {
        return;
    }
    let st = match status(store, &shared.registry, app, user) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("status of {user}: {}", e.desc);
            return;
        }
    };
    let frame = push_frame(pb::push::Kind::UserStatus(pb::UserStatusPush {
        statuses: vec![st],
    }));
    for (k, _) in subscribers {
        if let Some(sub) = crate::keys::trailing_str(&k, plen) {
            shared.registry.push(app, &sub, &frame, 0);
        }
    }
}
