//! The gap planner: which seq ranges to pull, given what the local store holds (its synced
//! ranges) and what the server says exists (a conversation's `min_seq..=max_seq`). No I/O; the
//! MessageActor feeds it and executes the plan.
//!
//! Synced ranges replace placeholder rows: a range `[from, to]` means "every message of these
//! seqs visible to this user is in the store". After a pull the answer's `covered_from..=
//! covered_to` is added; a received message adds its own seq.

use crate::model::{SeqRange, SyncedRanges};

/// Most messages pulled eagerly per conversation after a (re)login; older gaps are filled on
/// demand by history calls.
pub const EAGER_PULL_PER_CONVERSATION: u64 = 100;

impl SyncedRanges {
    /// Adds `[from, to]`, merging overlapping and adjacent ranges.
    pub fn insert(&mut self, from: u64, to: u64) {
        if from > to {
            return;
        }
        let (mut lo, mut hi) = (from, to);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for r in self.ranges.drain(..) {
            if r.to.saturating_add(1) < lo || hi.saturating_add(1) < r.from {
                kept.push(r);
            } else {
                lo = lo.min(r.from);
                hi = hi.max(r.to);
            }
        }
        kept.push(SeqRange { from: lo, to: hi });
        kept.sort_by_key(|r| r.from);
        self.ranges = kept;
    }

    /// Whether every seq of `[from, to]` is covered.
    pub fn covers(&self, from: u64, to: u64) -> bool {
        from > to || self.ranges.iter().any(|r| r.from <= from && to <= r.to)
    }

    /// The highest covered seq (0 when empty).
    pub fn max(&self) -> u64 {
        self.ranges.last().map_or(0, |r| r.to)
    }

    /// The uncovered sub-ranges of `[from, to]`, newest first.
    pub fn missing(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if from > to {
            return out;
        }
        let mut hi = to;
        for r in self.ranges.iter().rev() {
            if r.from > hi {
                continue;
            }
            if r.to < from {
                break;
            }
            if r.to < hi {
                out.push((r.to + 1, hi));
            }
            if r.from <= from {
                return out;
            }
            hi = r.from - 1;
        }
        out.push((from, hi));
        out
    }
}

/// One pull to make: `[from, to]` with at most `limit` messages taken from the newest end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pull {
    /// First seq.
    pub from: u64,
    /// Last seq.
    pub to: u64,
    /// Most messages to take (newest first).
    pub limit: u64,
}

/// The pulls that bring a conversation up to `max_seq` after a sync, newest first, at most
/// `budget` messages in total, never below `min_seq` (or 1).
pub fn plan_catch_up(ranges: &SyncedRanges, min_seq: u64, max_seq: u64, budget: u64) -> Vec<Pull> {
    let floor = min_seq
        .max(1)
        .max(max_seq.saturating_sub(budget.saturating_sub(1)));
    let mut left = budget;
    let mut out = Vec::new();
    for (from, to) in ranges.missing(floor, max_seq) {
        if left == 0 {
            break;
        }
        let n = (to - from + 1).min(left);
        out.push(Pull {
            from: to + 1 - n,
            to,
            limit: n,
        });
        left -= n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(rs: &[(u64, u64)]) -> SyncedRanges {
        let mut s = SyncedRanges::default();
        for &(a, b) in rs {
            s.insert(a, b);
        }
        s
    }

    fn pairs(s: &SyncedRanges) -> Vec<(u64, u64)> {
        s.ranges.iter().map(|r| (r.from, r.to)).collect()
    }

    #[test]
    fn insert_merges_overlapping_and_adjacent() {
        let s = ranges(&[(5, 7), (1, 2), (3, 3), (10, 12), (11, 20)]);
        assert_eq!(pairs(&s), [(1, 3), (5, 7), (10, 20)]);
        assert_eq!(s.max(), 20);
        assert!(s.covers(1, 3));
        assert!(!s.covers(2, 6));
        assert!(!s.covers(6, 10));
        let s = ranges(&[(1, 3), (4, 4), (5, 7)]);
        assert_eq!(pairs(&s), [(1, 7)]);
        assert!(s.covers(9, 8));
    }

    #[test]
    fn missing_lists_holes_newest_first() {
        let s = ranges(&[(3, 4), (8, 9)]);
        assert_eq!(s.missing(1, 12), [(10, 12), (5, 7), (1, 2)]);
        assert_eq!(s.missing(3, 4), Vec::<(u64, u64)>::new());
        assert_eq!(s.missing(4, 8), [(5, 7)]);
        assert_eq!(SyncedRanges::default().missing(1, 5), [(1, 5)]);
    }

    #[test]
    fn catch_up_is_bounded_and_newest_first() {
        let s = ranges(&[(1, 10)]);
        assert_eq!(
            plan_catch_up(&s, 0, 500, 100),
            [Pull {
                from: 401,
                to: 500,
                limit: 100
            }]
        );
        let s = ranges(&[(1, 10), (15, 18)]);
        assert_eq!(
            plan_catch_up(&s, 0, 20, 100),
            [
                Pull {
                    from: 19,
                    to: 20,
                    limit: 2
                },
                Pull {
                    from: 11,
                    to: 14,
                    limit: 4
                }
            ]
        );
        assert!(plan_catch_up(&ranges(&[(1, 18)]), 0, 18, 100).is_empty());
        assert_eq!(
            plan_catch_up(&SyncedRanges::default(), 7, 9, 100),
            [Pull {
                from: 7,
                to: 9,
                limit: 3
            }]
        );
        assert!(plan_catch_up(&SyncedRanges::default(), 0, 0, 100).is_empty());
    }
}
