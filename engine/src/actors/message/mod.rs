//! MessageActor: the send pipeline with its durable outbox, the receive pipeline (dedupe, order,
//! gap fill), the post-login sync driver, history and find.
//!
//! **Outbox.** `send_message` writes the message (status `sending`) under its pending key plus an
//! outbox entry in one batch before anything leaves. Whenever the connection comes (back) up,
//! every outbox entry is sent again with the same msg_id; the server is idempotent on
//! `(sender, msg_id)`. An ack moves the message to its `(conversation, seq)` key and drops the
//! outbox entry; a server error marks it `send_fail`; a disconnect or a restart changes nothing.
//!
//! **Exactly once.** A message reaches the listeners only when it is newly inserted into the
//! store (the unique `(conversation, msg_id)` index decides) and came from a live push or from
//! the catch-up pulls of a sync or of a push gap — never from history calls. Messages this
//! device sent are found in the index (pending or acked) and never announced.
//!
//! The actor is split by concern: [`send`] (create, send, resend, the outbox), [`receive`]
//! (ingest, dedupe, announce, pushes), [`sync`] (the post-login catch-up), [`history`] (history
//! pages and find). Lifecycle operations on stored messages live in their own modules; other
//! areas may add `impl Handler<…> for MessageActor` blocks in their own files.

mod annotations;
mod forward;
mod history;
mod lifecycle;
mod pins;
mod receive;
pub mod search;
mod send;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};

use actix::prelude::*;
use chime_proto::pb;
use chime_proto::{codes, ids};

use super::{
    Account, CloseAccount, Offline, Online, OpenAccount, Peers, Shared, db_err, decode, now_ms,
};
use crate::model::{StoredMessage, SyncedRanges};
use crate::outbox::InFlight;
use crate::store::{WriteBatch, keys};
use crate::{ApiError, Result};
use send::{WAITER_SWEEP, Waiter};

pub use annotations::{Annotate, AnnotationCall, AnnotationPushed, ExtensionWrite};
pub use forward::{CreateForward, CreateMerger, DownloadMerger};
pub use history::{Find, HistoryQuery};
pub use lifecycle::{
    CancelSend, ChangePushed, ClearHistory, DeleteLocal, DeleteMessages, InsertLocal, Modify,
    Revoke, SetLocalCustom,
};
pub use pins::{GetPinned, PinGroupMessage, PinPushed};
pub use receive::{PUSH_BURST, PushedBurst};
pub use search::SearchLocal;
pub use send::{Create, CreateKind, Resend, Send, SendParams};
pub(crate) use sync::SyncNow;

/// Owns messages.
pub struct MessageActor {
    pub(crate) shared: Shared,
    pub(crate) peers: Option<Peers>,
    pub(crate) acct: Option<Account>,
    pub(crate) online: Option<u64>,
    pub(crate) created: HashMap<String, StoredMessage>,
    pub(crate) waiters: HashMap<String, Vec<Waiter>>,
    pub(crate) in_flight: InFlight,
    pub(crate) transient: HashMap<String, StoredMessage>,
    pub(crate) next_order: u64,
    pub(crate) syncing: bool,
    pub(crate) sync_again: bool,
    pub(crate) seen_online_only: (HashSet<String>, VecDeque<String>),
    /// Synced ranges changed since the last flush. Ranges only ever under-report if a crash
    /// loses them (the messages were written first), which costs a re-pull, never a loss: so
    /// they are written once per [`RANGES_FLUSH`] instead of with every message.
    pub(crate) ranges_cache: HashMap<String, SyncedRanges>,
    pub(crate) ranges_dirty: HashSet<String>,
    /// Sends being judged by the content filters (not stored yet); `cancel_send_message` takes
    /// the id out, and the send then answers 8021 instead of going on (`crate::filter`).
    pub(crate) screening: HashSet<String>,
    /// Versions of reaction/extension changes (`MESSAGE_CHANGE_ANNOTATED`) above the change
    /// cursor that this device already knows — announced from a live push, or made by this
    /// device — so that the catch-up pull of the change log does not announce them again; with
    /// the user whose log they are in.
    pub(crate) known_annotations: (String, std::collections::BTreeSet<u64>),
    /// Media uploads running before their messages are sent (`crate::media::upload`).
    pub(crate) uploads: crate::media::upload::Uploads,
    /// Acks `(msg_id, seq, server_time_ms, change_version)` not yet stored: finished together
    /// (`send`).
    pub(crate) acks: Vec<(String, u64, i64, u64)>,
    /// The searchable texts of messages queued for the search index, so that its flush needn't
    /// read them back (`crate::search_index::Memory`).
    pub(crate) search_queue: crate::search_index::Memory,
}

/// How often changed synced ranges are written.
const RANGES_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) fn new_msg_id() -> String {
    format!("{:x}-{:016x}", now_ms(), rand::random::<u64>())
}

pub(crate) fn conv_ref(m: &StoredMessage) -> pb::ConvRef {
    let target = if m.is_group { &m.group_id } else { &m.peer };
    ids::conv_ref(m.is_group, target.clone())
}

pub(crate) fn mailbox(e: MailboxError) -> ApiError {
    ApiError::new(codes::ERR_SDK_INTERNAL, format!("engine actor: {e}"))
}

impl MessageActor {
    /// An actor with no account.
    pub fn new(shared: Shared) -> Self {
        Self {
            shared,
            peers: None,
            acct: None,
            online: None,
            created: HashMap::new(),
            waiters: HashMap::new(),
            in_flight: InFlight::default(),
            transient: HashMap::new(),
            next_order: 1,
            syncing: false,
            sync_again: false,
            seen_online_only: (HashSet::new(), VecDeque::new()),
            ranges_cache: HashMap::new(),
            ranges_dirty: HashSet::new(),
            screening: HashSet::new(),
            known_annotations: (String::new(), std::collections::BTreeSet::new()),
            uploads: Default::default(),
            acks: Vec::new(),
            search_queue: Default::default(),
        }
    }

    pub(crate) fn acct(&self) -> Result<&Account> {
        self.acct
            .as_ref()
            .ok_or_else(|| ApiError::new(codes::ERR_SDK_NOT_LOGGED_IN, "not logged in"))
    }

    pub(crate) fn me(&self) -> &str {
        self.acct.as_ref().map_or("", |a| a.user.as_str())
    }

    pub(crate) fn load_at(&self, loc: &[u8]) -> Result<Option<StoredMessage>> {
        let store = &self.acct()?.store;
        match store.get(loc).map_err(db_err)? {
            Some(v) => Ok(Some(decode(loc, &v).map_err(db_err)?)),
            None => Ok(None),
        }
    }

    /// The location key of a message by id.
    pub(crate) fn locate(&self, msg_id: &str) -> Result<Option<Vec<u8>>> {
        self.acct()?
            .store
            .get(&keys::msg_id(msg_id))
            .map_err(db_err)
    }

    pub(crate) fn find(&self, msg_id: &str) -> Result<Option<(Vec<u8>, StoredMessage)>> {
        let Some(loc) = self.locate(msg_id)? else {
            return Ok(None);
        };
        Ok(self.load_at(&loc)?.map(|m| (loc, m)))
    }

    pub(crate) fn ranges(&self, conv: &str) -> Result<SyncedRanges> {
        if let Some(r) = self.ranges_cache.get(conv) {
            return Ok(r.clone());
        }
        let k = keys::ranges(conv);
        match self.acct()?.store.get(&k).map_err(db_err)? {
            Some(v) => decode(&k, &v).map_err(db_err),
            None => Ok(SyncedRanges::default()),
        }
    }

    pub(crate) fn range_entry<'a>(
        &self,
        ranges: &'a mut HashMap<String, SyncedRanges>,
        conv: &str,
    ) -> Result<&'a mut SyncedRanges> {
        if !ranges.contains_key(conv) {
            let r = self.ranges(conv)?;
            ranges.insert(conv.to_owned(), r);
        }
        ranges
            .get_mut(conv)
            .ok_or_else(|| ApiError::new(codes::ERR_SDK_INTERNAL, "ranges cache"))
    }

    /// Records ranges that the store now backs (call after the messages' batch is applied).
    pub(crate) fn stage_ranges(&mut self, ranges: HashMap<String, SyncedRanges>) {
        for (conv, r) in ranges {
            self.ranges_dirty.insert(conv.clone());
            self.ranges_cache.insert(conv, r);
        }
    }

    /// Writes the changed ranges.
    pub(crate) fn flush_ranges(&mut self) {
        if self.ranges_dirty.is_empty() {
            return;
        }
        let Some(acct) = &self.acct else {
            self.ranges_dirty.clear();
            return;
        };
        let mut b = WriteBatch::new();
        for conv in self.ranges_dirty.drain() {
            if let Some(r) = self.ranges_cache.get(&conv) {
                b.put(keys::ranges(&conv), prost::Message::encode_to_vec(r));
            }
        }
        if let Err(e) = acct.store.apply(b) {
            tracing::warn!("writing synced ranges: {e}");
        }
        if self.ranges_cache.len() > 4096 {
            self.ranges_cache.clear();
        }
    }
}

impl Actor for MessageActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(WAITER_SWEEP, |act, _| act.sweep_waiters());
        ctx.run_interval(RANGES_FLUSH, |act, _| act.flush_ranges());
        ctx.run_interval(crate::search_index::FLUSH_EVERY, |act, ctx| {
            act.flush_search_index(ctx)
        });
    }
}

/// Tells the actor its peers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPeers(pub Peers);

impl Handler<SetPeers> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: SetPeers, _: &mut Context<Self>) {
        self.peers = Some(msg.0);
    }
}

impl Handler<OpenAccount> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: OpenAccount, _: &mut Context<Self>) {
        self.flush_ranges();
        self.ranges_cache.clear();
        let order = msg
            .0
            .store
            .get(&keys::meta(keys::META_LOCAL_ORDER))
            .ok()
            .flatten()
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        // The counter is persisted at close only; after a crash, the clock (µs) keeps new orders
        // above every order handed out before (one per send, far below a million per second).
        let clock_us = u64::try_from(now_ms()).unwrap_or(0).saturating_mul(1000);
        self.next_order = (order + 1).max(clock_us);
        // Change versions are per user: what this device knew of another user's log is moot.
        if self.known_annotations.0 != msg.0.user {
            self.known_annotations = (msg.0.user.clone(), Default::default());
        }
        self.acct = Some(msg.0);
        self.online = None;
        self.in_flight.reset();
        self.syncing = false;
        self.sync_again = false;
    }
}

impl Handler<CloseAccount> for MessageActor {
    type Result = ();
    fn handle(&mut self, _: CloseAccount, _: &mut Context<Self>) {
        // Acks that arrived before the logout are stored and answered.
        self.finish_acks();
        crate::media::upload::stop_all(self);
        for (id, list) in self.waiters.drain() {
            for (_, tx) in list {
                let _ = tx.send(Err(ApiError::new(
                    codes::ERR_INTERRUPTED,
                    format!("logged out before {id} was acked; it stays in the outbox"),
                )));
            }
        }
        self.flush_ranges();
        self.ranges_cache.clear();
        self.flush_search_index_all();
        if let Some(a) = &self.acct {
            let mut b = WriteBatch::new();
            b.put(
                keys::meta(keys::META_LOCAL_ORDER),
                self.next_order.to_be_bytes().to_vec(),
            );
            if let Err(e) = a.store.apply(b) {
                tracing::warn!("writing the local order: {e}");
            }
        }
        if let Some(a) = self.acct.take()
            && let Err(e) = a.store.flush()
        {
            tracing::warn!("store flush at close: {e}");
        }
        self.online = None;
        self.in_flight.reset();
        self.transient.clear();
        self.created.clear();
    }
}

impl Handler<Online> for MessageActor {
    type Result = ();
    fn handle(&mut self, msg: Online, ctx: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        self.online = Some(msg.0);
        self.in_flight.reset();
        if let Err(e) = self.flush_outbox(ctx) {
            tracing::warn!("outbox flush: {e}");
        }
        self.start_sync(ctx);
        self.start_change_pull(ctx);
    }
}

impl Handler<Offline> for MessageActor {
    type Result = ();
    fn handle(&mut self, _: Offline, _: &mut Context<Self>) {
        self.online = None;
        self.in_flight.reset();
    }
}
