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
    let sessions = shared.registry.platforms(app, user).len();
    let flipped = if login { sessions == 1 } else { sessions == 0 };
    if !flipped {
        return;
    }
    let shared = Arc::clone(shared);
    let user = user.to_owned();
    tokio::task::spawn_blocking(move || {
        let store = shared.store.as_ref();
        let st = match status(store, &shared.registry, app, &user) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("status of {user}: {}", e.desc);
                return;
            }
        };
        let (lo, hi) = keys::base(app, &user, b"t").prefix_range();
        let plen = keys::prefix_len(&user, b"t");
        let subscribers = match store.scan(&lo, &hi, usize::MAX, false) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("status subscribers of {user}: {e}");
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
    });
}
