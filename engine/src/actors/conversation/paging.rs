//! Paging the conversation list by position (issue 3): the cursor `next_seq` of
//! `get_conversation_list` / `get_conversation_list_by_filter` is the list position of the last
//! conversation answered — pinned or not, and its `orderkey` — not an offset. The next page starts
//! after that position, so a conversation that moves to the top while the user pages (a new
//! message) is not answered twice and pushes nothing out of the pages still to come: no
//! duplicates, no gaps for the conversations that did not move.
//!
//! Positions are `u64`s that sort like the list, descending: the top bit is "pinned", then the
//! `orderkey` (ms), then 12 bits derived from the conversation id, so that conversations whose
//! last messages share a millisecond (or that have none yet) still get distinct positions and a
//! page holds exactly `count`. Should two still share a position (same pin state, millisecond and
//! tie bits: one chance in 4,096), they are never split across pages: a page that ends inside
//! such a run takes the whole run. `next_seq` 0 means "from the top".
//!
//! I/O-free: the actor hands the list in order and its positions.

/// The position bit of a pinned conversation.
const PINNED: u64 = 1 << 63;

/// Bits of the position below the `orderkey` that tell conversations of the same millisecond
/// apart.
const TIE_BITS: u32 = 12;

/// The list position of a conversation: pinned ones above all others, then newest `orderkey`,
/// then a tie-break derived from `conversation_id` (stable across runs and versions).
pub fn position(pinned: bool, orderkey: u64, conversation_id: &str) -> u64 {
    let key = ((orderkey << TIE_BITS) | tie_break(conversation_id)) & !PINNED;
    if pinned { key | PINNED } else { key }
}

/// `TIE_BITS` bits of the FNV-1a hash of `id`: the same id always lands in the same place.
fn tie_break(id: &str) -> u64 {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    u64::from(hash) & ((1 << TIE_BITS) - 1)
}

/// One page of a list whose positions are `positions` (in list order, i.e. not increasing):
/// the indexes to answer, in order, the `next_seq` to hand back (the last answered one's
/// position, or the cursor unchanged when the page is empty), and whether the list is finished
/// (nothing below that position remains). The indexes are those below the cursor's position,
/// whatever came before them, so a list that is momentarily out of order still never answers a
/// conversation twice. `positions` is read only as far as the page and the first entry after it
/// (the first page of 10,000 conversations looks at ~101 of them).
pub fn page(
    positions: impl IntoIterator<Item = u64>,
    next_seq: u64,
    count: usize,
) -> (Vec<usize>, u64, bool) {
    let below = |p: u64, cursor: u64| cursor == 0 || p < cursor;
    let mut out = Vec::new();
    let mut cursor = next_seq;
    let mut at = None;
    for (i, p) in positions.into_iter().enumerate() {
        if !below(p, next_seq) {
            continue;
        }
        // Do not split a run of equal positions: the next page could not tell where it ended.
        if out.len() < count || at == Some(p) {
            out.push(i);
            at = Some(p);
            cursor = p;
        } else if below(p, cursor) {
            return (out, cursor, false);
        }
    }
    (out, cursor, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`page`] over a slice, without the finished flag.
    fn page2(positions: &[u64], next_seq: u64, count: usize) -> (Vec<usize>, u64) {
        let (picked, cursor, _) = page(positions.iter().copied(), next_seq, count);
        (picked, cursor)
    }

    #[test]
    fn a_page_says_whether_anything_below_it_remains() {
        let list = [50, 40, 40, 30];
        assert_eq!(page(list, 0, 1), (vec![0], 50, false));
        assert_eq!(
            page(list, 50, 1),
            (vec![1, 2], 40, false),
            "the run of 40s stays whole"
        );
        assert_eq!(page(list, 40, 1), (vec![3], 30, true));
        assert_eq!(page(list, 30, 1), (vec![], 30, true));
        assert_eq!(page(list, 0, 4), (vec![0, 1, 2, 3], 30, true));
        assert_eq!(page(list, 0, 0), (vec![], 0, false));
    }

    #[test]
    fn pinned_positions_sort_above_all_others() {
        let now = 1_800_000_000_000;
        assert!(position(true, 1, "c2c_a") > position(false, now, "c2c_b"));
        assert!(position(false, 20, "c2c_a") > position(false, 10, "c2c_b"));
        assert!(position(true, 20, "c2c_b") > position(true, 10, "c2c_a"));
        assert_eq!(position(false, 5, "x") >> TIE_BITS, 5);
    }

    #[test]
    fn conversations_of_the_same_millisecond_get_distinct_stable_positions() {
        let ids: Vec<String> = (0..100).map(|i| format!("c2c_user{i}")).collect();
        let mut positions: Vec<u64> = ids.iter().map(|id| position(false, 1_000, id)).collect();
        assert_eq!(positions[7], position(false, 1_000, "c2c_user7"));
        positions.sort_unstable();
        positions.dedup();
        assert_eq!(positions.len(), 100);
        // Still below the next millisecond and above the previous one.
        assert!(positions.iter().all(|&p| p >> TIE_BITS == 1_000));
        // Empty group conversations (no message yet, orderkey 0) page one by one too.
        let empty: Vec<u64> = (0..10)
            .map(|i| position(false, 0, &format!("group_g{i}")))
            .collect();
        let (first, cursor) = page2(&sorted_desc(&empty), 0, 3);
        assert_eq!(first.len(), 3);
        assert_eq!(page2(&sorted_desc(&empty), cursor, 100).0.len(), 7);
    }

    fn sorted_desc(positions: &[u64]) -> Vec<u64> {
        let mut v = positions.to_vec();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    }

    #[test]
    fn pages_follow_positions_not_offsets() {
        let list = [position(true, 7, "p"), 50, 40, 30, 20, 10];
        let (first, cursor) = page2(&list, 0, 2);
        assert_eq!(first, [0, 1]);
        assert_eq!(cursor, 50);
        // A conversation moves to the top (its position grows) between two pages: the next page
        // still starts after the last one answered.
        let moved = [position(true, 7, "p"), 60, 50, 40, 20, 10];
        let (second, cursor) = page2(&moved, cursor, 2);
        assert_eq!(second, [3, 4]);
        assert_eq!(cursor, 20);
        let (third, cursor) = page2(&moved, cursor, 2);
        assert_eq!(third, [5]);
        assert_eq!(cursor, 10);
        let (done, cursor) = page2(&moved, cursor, 2);
        assert!(done.is_empty());
        assert_eq!(cursor, 10);
    }

    #[test]
    fn a_run_of_equal_positions_is_never_split() {
        let list = [30, 20, 20, 20, 10];
        let (first, cursor) = page2(&list, 0, 2);
        assert_eq!(first, [0, 1, 2, 3]);
        assert_eq!(cursor, 20);
        let (second, _) = page2(&list, cursor, 2);
        assert_eq!(second, [4]);
        assert_eq!(page2(&[], 0, 5), (vec![], 0));
        assert_eq!(page2(&list, 0, 0), (vec![], 0));
    }
}
