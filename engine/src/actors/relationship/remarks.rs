//! The receiver's friend remarks on message objects.
//!
//! A message object carries `friend_remark`: the local user's remark for the sender, taken from
//! the user's own friend list **when the object is read**, so that a remark set later shows on
//! old messages too (in history, search and find results as in new-message events). The
//! RelationshipActor owns the friend list; it publishes the remarks here after every change, and
//! the two doors through which message objects leave the engine — the dispatch table's results
//! and the event queue — fill them in ([`FriendRemarks::annotate`]). `codec::to_json` writes
//! `friend_remark: ""`, which marks every message object for this pass.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// The local user's friend remarks (friend → non-empty remark): written by the
/// RelationshipActor only, read wherever message objects leave the engine. Cheap to clone.
#[derive(Clone, Default)]
pub struct FriendRemarks(Arc<RwLock<HashMap<String, String>>>);

impl FriendRemarks {
    /// Replaces every remark (the friend list changed, or another account opened).
    pub fn replace(&self, remarks: impl IntoIterator<Item = (String, String)>) {
        let fresh: HashMap<String, String> = remarks
            .into_iter()
            .filter(|(_, remark)| !remark.is_empty())
            .collect();
        match self.0.write() {
            Ok(mut map) => *map = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
    }

    /// Sets `friend_remark` of every message object inside `v` to the remark for its sender.
    /// A message object is an object with `msg_id`, `sender`, `elem_list` and `friend_remark`.
    pub fn annotate(&self, v: &mut Value) {
        let Ok(map) = self.0.read() else {
            return;
        };
        if !map.is_empty() {
            annotate_with(&map, v);
        }
    }
}

fn annotate_with(map: &HashMap<String, String>, v: &mut Value) {
    match v {
        Value::Object(o) => {
            let is_message = ["msg_id", "elem_list", "friend_remark"]
                .iter()
                .all(|k| o.contains_key(*k));
            if is_message
                && let Some(remark) = o
                    .get("sender")
                    .and_then(Value::as_str)
                    .and_then(|s| map.get(s))
            {
                let remark = Value::String(remark.clone());
                o.insert("friend_remark".into(), remark);
            }
            for child in o.values_mut() {
                annotate_with(map, child);
            }
        }
        Value::Array(a) => {
            for child in a {
                annotate_with(map, child);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn msg(sender: &str) -> Value {
        json!({"msg_id": "m", "sender": sender, "elem_list": [], "friend_remark": ""})
    }

    #[test]
    fn message_objects_anywhere_get_the_senders_current_remark() {
        let r = FriendRemarks::default();
        r.replace([
            ("bob".to_owned(), "Bobby".to_owned()),
            ("eve".into(), String::new()),
        ]);
        let mut v = json!({
            "message_list": [msg("bob"), msg("carol"), msg("eve")],
            "conversation_list": [{"last_message": msg("bob")}],
            // A friend object has a remark but is not a message: left alone.
            "friend_info_list": [{"user_id": "bob", "friend_remark": "old"}],
        });
        r.annotate(&mut v);
        assert_eq!(v["message_list"][0]["friend_remark"], "Bobby");
        assert_eq!(v["message_list"][1]["friend_remark"], "");
        assert_eq!(v["message_list"][2]["friend_remark"], "");
        assert_eq!(
            v["conversation_list"][0]["last_message"]["friend_remark"],
            "Bobby"
        );
        assert_eq!(v["friend_info_list"][0]["friend_remark"], "old");
        // A changed remark shows on the next read.
        r.replace([("bob".to_owned(), "B.".to_owned())]);
        let mut m = msg("bob");
        r.annotate(&mut m);
        assert_eq!(m["friend_remark"], "B.");
    }
}
