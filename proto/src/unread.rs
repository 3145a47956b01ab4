//! The unread rule (ARCHITECTURE.md §3), in one place for server and engine.
//!
//! A message counts toward a reader's unread count in its conversation when it is from someone
//! else, newer than the reader's read position, stored (not online-only), not excluded from
//! unread, not revoked, not a targeted group message, and not a group tips (system) message.
//! A conversation's total is the number of such messages; the total unread of a user is the sum
//! over conversations whose receive option does not mute them (the engine applies that part).

use crate::pb::{Message, elem::Content};

/// Whether `msg` counts toward `reader`'s unread count given the reader's `read_seq`.
pub fn counts_as_unread(msg: &Message, reader: &str, read_seq: u64) -> bool {
    msg.seq > read_seq
        && msg.sender != reader
        && !msg.online_user_only
        && !msg.exclude_from_unread
        && !msg.revoked
        && msg.target_user_list.is_empty()
        && !msg
            .elems
            .iter()
            .any(|e| matches!(e.content, Some(Content::GroupTips(_))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{Elem, GroupTipsElem};

    fn msg(sender: &str, seq: u64) -> Message {
        Message {
            sender: sender.into(),
            seq,
            ..Default::default()
        }
    }

    #[test]
    fn the_rule() {
        assert!(counts_as_unread(&msg("bob", 5), "alice", 4));
        assert!(!counts_as_unread(&msg("bob", 4), "alice", 4));
        assert!(!counts_as_unread(&msg("alice", 5), "alice", 4));
        let mut m = msg("bob", 5);
        m.exclude_from_unread = true;
        assert!(!counts_as_unread(&m, "alice", 0));
        let mut m = msg("bob", 5);
        m.online_user_only = true;
        assert!(!counts_as_unread(&m, "alice", 0));
        let mut m = msg("bob", 5);
        m.revoked = true;
        assert!(!counts_as_unread(&m, "alice", 0));
        let mut m = msg("bob", 5);
        m.target_user_list = vec!["alice".into()];
        assert!(!counts_as_unread(&m, "alice", 0));
        let mut m = msg("bob", 5);
        m.elems = vec![Elem {
            content: Some(Content::GroupTips(GroupTipsElem::default())),
        }];
        assert!(!counts_as_unread(&m, "alice", 0));
    }
}
