//! Paging the conversation list by position (issue 3): the cursor `next_seq` of
//! `get_conversation_list` / `get_conversation_list_by_filter` is the list position of the last
//! conversation answered — pinned or not, and its `orderkey` — not an offset. The next page starts
//! after that position, so a conversation that moves to the top while the user pages (a new
//! message) is not answered twice and pushes nothing out of the pages still to come: no
//! duplicates, no gaps for the conversations that did not move.
//!
//! Positions are `u64`s that sort like the list, descending: the top bit is "pinned", the rest the
//! `orderkey`. Conversations sharing a position (same pin state and `orderkey`) are never split
//! across pages: a page that ends inside such a run takes the whole run (so it may hold more than
//! `count`). `next_seq` 0 means "from the top".
//!
//! I/O-free: the actor hands the list in order and its positions.

/// The position bit of a pinned conversation.
const PINNED: u64 = 1 << 63;

/// The list position of a conversation: pinned ones above all others, then newest `orderkey`.
pub fn position(pinned: bool, orderkey: u64) -> u64 {
    let key = orderkey & !PINNED;
    if pinned { key | PINNED } else { key }
}

/// One page of a list whose positions are `positions` (in list order, i.e. not increasing):
/// the indexes to answer, in order, and the `next_seq` to hand back (the last answered one's
/// position, or the cursor unchanged when the page is empty). The indexes are those below the
/// cursor's position, whatever came before them, so a list that is momentarily out of order
/// still never answers a conversation twice.
pub fn page(positions: &[u64], next_seq: u64, count: usize) -> (Vec<usize>, u64) {
    let mut after = (0..positions.len()).filter(|&i| next_seq == 0 || positions[i] < next_seq);
    let mut out: Vec<usize> = after.by_ref().take(count).collect();
    if let Some(&last) = out.last() {
        // Do not split a run of equal positions: the next page could not tell where it ended.
        let at = positions[last];
        out.extend(after.take_while(|&i| positions[i] == at));
    }
    let cursor = out.last().map_or(next_seq, |&i| positions[i]);
    (out, cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_positions_sort_above_all_others() {
        assert!(position(true, 1) > position(false, u64::MAX >> 1));
        assert!(position(false, 20) > position(false, 10));
        assert!(position(true, 20) > position(true, 10));
        assert_eq!(position(false, 5), 5);
    }

    #[test]
    fn pages_follow_positions_not_offsets() {
        let list = [position(true, 7), 50, 40, 30, 20, 10];
        let (first, cursor) = page(&list, 0, 2);
        assert_eq!(first, [0, 1]);
        assert_eq!(cursor, 50);
        // A conversation moves to the top (its position grows) between two pages: the next page
        // still starts after the last one answered.
        let moved = [position(true, 7), 60, 50, 40, 20, 10];
        let (second, cursor) = page(&moved, cursor, 2);
        assert_eq!(second, [3, 4]);
        assert_eq!(cursor, 20);
        let (third, cursor) = page(&moved, cursor, 2);
        assert_eq!(third, [5]);
        assert_eq!(cursor, 10);
        let (done, cursor) = page(&moved, cursor, 2);
        assert!(done.is_empty());
        assert_eq!(cursor, 10);
    }

    #[test]
    fn a_run_of_equal_positions_is_never_split() {
        let list = [30, 20, 20, 20, 10];
        let (first, cursor) = page(&list, 0, 2);
        assert_eq!(first, [0, 1, 2, 3]);
        assert_eq!(cursor, 20);
        let (second, _) = page(&list, cursor, 2);
        assert_eq!(second, [4]);
        assert_eq!(page(&[], 0, 5), (vec![], 0));
        assert_eq!(page(&list, 0, 0), (vec![], 0));
    }
}
