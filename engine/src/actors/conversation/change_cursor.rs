//! The device's position in the user's server-side conversation change log (ARCHITECTURE.md §3:
//! "reconnect sync is proportional to what changed"), free of I/O.
//!
//! The server gives every change of one of the user's conversations the next version of the
//! user's counter (strictly +1 per change, never shared: `server/src/change_log.rs`), and the
//! answers and pushes that carry a change carry its version. The login/reconnect sync asks for
//! every conversation whose newest version is above the cursor. A cursor moved only by syncs
//! would restate at the next login everything the device already received live; so the cursor
//! also advances over the **unbroken run** of versions the device has applied: cursor C with
//! applied {C+1, C+2, C+4} → cursor C+2, C+4 pending. A version never seen (a push lost while
//! disconnected, a change whose only carrier is shared by many users, such as a group tip) is a
//! gap that holds the cursor, so the next sync restates from it: never less than needed.
//!
//! The pending set is bounded ([`MAX_PENDING`]); past it new versions are not recorded, which
//! only means the sync restates them. The state is persisted by the conversation actor in the
//! same store batch as the conversation records the versions' changes produced.

use std::collections::BTreeSet;

/// Most versions kept above a gap; past it, versions are left to the next sync.
pub const MAX_PENDING: usize = 4096;

/// The change cursor and the versions applied above it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeCursor {
    cursor: u64,
    pending: BTreeSet<u64>,
    /// Changed since the last [`ChangeCursor::take_dirty`].
    dirty: bool,
}

impl ChangeCursor {
    /// The state as persisted: the cursor and the encoded pending set ([`Self::encode_pending`]).
    pub fn restore(cursor: u64, pending: &[u8]) -> Self {
        let pending = pending
            .chunks_exact(8)
            .filter_map(|c| <[u8; 8]>::try_from(c).ok())
            .map(u64::from_be_bytes)
            .filter(|v| *v > cursor)
            .take(MAX_PENDING)
            .collect();
        let mut s = Self {
            cursor,
            pending,
            dirty: false,
        };
        s.advance();
        s
    }

    /// The cursor: every version up to it is applied on this device.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// How many versions are applied above a gap.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The first version missing, when versions above it are applied (a gap).
    pub fn gap(&self) -> Option<u64> {
        (!self.pending.is_empty()).then_some(self.cursor + 1)
    }

    /// The pending versions, 8 bytes big-endian each, ascending.
    pub fn encode_pending(&self) -> Vec<u8> {
        self.pending.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    /// Version `v` (0 = none) is applied on this device.
    pub fn applied(&mut self, v: u64) {
        if v <= self.cursor || self.pending.contains(&v) {
            return;
        }
        if v == self.cursor + 1 {
            self.cursor = v;
            self.advance();
        } else if self.pending.len() < MAX_PENDING {
            self.pending.insert(v);
        } else {
            return;
        }
        self.dirty = true;
    }

    /// A sync answered (and the device applied) every change up to `to`.
    pub fn synced(&mut self, to: u64) {
        if to <= self.cursor {
            return;
        }
        self.cursor = to;
        self.pending = self.pending.split_off(&(to + 1));
        self.advance();
        self.dirty = true;
    }

    /// Whether the state changed since last asked (and clears the flag).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Moves the cursor over the pending versions that follow it without a gap.
    fn advance(&mut self) {
        while self.pending.first() == Some(&(self.cursor + 1)) {
            self.pending.pop_first();
            self.cursor += 1;
            self.dirty = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_follows_the_unbroken_run_and_holds_at_a_gap() {
        let mut c = ChangeCursor::restore(10, &[]);
        for v in [11, 12, 14] {
            c.applied(v);
        }
        assert_eq!((c.cursor(), c.pending()), (12, 1));
        // Duplicates and old versions change nothing.
        c.applied(12);
        c.applied(3);
        c.applied(14);
        c.applied(0);
        assert_eq!((c.cursor(), c.pending()), (12, 1));
        // The gap filled: the run continues through what was pending.
        assert_eq!(c.gap(), Some(13));
        c.applied(13);
        assert_eq!((c.cursor(), c.pending()), (14, 0));
        assert_eq!(c.gap(), None);
    }

    #[test]
    fn a_sync_moves_past_its_answer_and_keeps_what_is_above() {
        let mut c = ChangeCursor::restore(0, &[]);
        for v in [5, 7, 8, 20] {
            c.applied(v);
        }
        assert_eq!(c.cursor(), 0);
        c.synced(6);
        // 7 and 8 follow the sync's cursor; 20 stays pending above the gap at 9.
        assert_eq!((c.cursor(), c.pending()), (8, 1));
        // A sync never moves the cursor back.
        c.synced(3);
        assert_eq!(c.cursor(), 8);
        c.synced(25);
        assert_eq!((c.cursor(), c.pending()), (25, 0));
    }

    #[test]
    fn persisted_state_round_trips_and_is_dirty_only_after_a_change() {
        let mut c = ChangeCursor::restore(2, &[]);
        assert!(!c.take_dirty());
        c.applied(2);
        assert!(!c.take_dirty());
        c.applied(5);
        c.applied(9);
        assert!(c.take_dirty());
        assert!(!c.take_dirty());
        let back = ChangeCursor::restore(c.cursor(), &c.encode_pending());
        assert_eq!((back.cursor(), back.pending()), (2, 2));
        // A stored pending version at or below the cursor (never written, but harmless) is
        // dropped, and one that follows it is taken into the run.
        let mut raw = 1u64.to_be_bytes().to_vec();
        raw.extend_from_slice(&3u64.to_be_bytes());
        raw.extend_from_slice(&[0xff; 3]);
        let back = ChangeCursor::restore(2, &raw);
        assert_eq!((back.cursor(), back.pending()), (3, 0));
    }

    #[test]
    fn the_pending_set_is_bounded() {
        let mut c = ChangeCursor::restore(0, &[]);
        for v in 0..(MAX_PENDING as u64 + 10) {
            c.applied(2 + v * 2);
        }
        assert_eq!((c.cursor(), c.pending()), (0, MAX_PENDING));
        // The versions left out are the sync's: it restates them.
        c.synced(2 * MAX_PENDING as u64 + 100);
        assert_eq!((c.cursor(), c.pending()), (2 * MAX_PENDING as u64 + 100, 0));
    }
}
