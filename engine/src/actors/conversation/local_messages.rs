//! Deleting a conversation "with its messages" (`delete_conversation_list {clear_message:
//! true}`) removes the messages from this device's store too. The messages belong to the
//! [`MessageActor`], so this is a handler of that actor (it stays the only writer of its tables);
//! it lives here because conversation deletion is what needs it.

use actix::prelude::*;

use crate::Result;
use crate::actors::message::MessageActor;
use crate::actors::{db_err, decode};
use crate::model::StoredMessage;
use crate::store::{WriteBatch, keys};

/// Removes a conversation's stored messages with seq <= `up_to` (and its synced ranges, so that
/// the server — which no longer serves them — decides what history remains). Answers how many
/// messages were removed.
#[derive(Message)]
#[rtype(result = "Result<usize>")]
pub struct ClearConversationMessages {
    /// The conversation id.
    pub conversation_id: String,
    /// Highest seq removed.
    pub up_to: u64,
}

/// Most messages removed per store batch.
const BATCH: usize = 1000;

impl Handler<ClearConversationMessages> for MessageActor {
    type Result = Result<usize>;
    fn handle(&mut self, msg: ClearConversationMessages, _: &mut Context<Self>) -> Self::Result {
        let store = self.acct()?.store.clone();
        let conv = &msg.conversation_id;
        let (lo, _) = keys::conv_bounds(keys::table::MESSAGE, conv);
        let hi = keys::message(conv, msg.up_to.saturating_add(1));
        let mut removed = 0;
        loop {
            let page = store.scan(&lo, &hi, false, BATCH).map_err(db_err)?;
            if page.is_empty() {
                break;
            }
            let n = page.len();
            let mut b = WriteBatch::new();
            for (k, v) in page {
                let m: StoredMessage = decode(&k, &v).map_err(db_err)?;
                b.delete(keys::conv_msg_id(conv, &m.msg_id));
                b.delete(keys::msg_id(&m.msg_id));
                b.delete(k);
            }
            store.apply(b).map_err(db_err)?;
            removed += n;
            if n < BATCH {
                break;
            }
        }
        self.ranges_cache.remove(conv);
        self.ranges_dirty.remove(conv);
        let mut b = WriteBatch::new();
        b.delete(keys::ranges(conv));
        store.apply(b).map_err(db_err)?;
        Ok(removed)
    }
}
