//! ConversationActor: the conversation list, unread counts by the one rule
//! (`chime_proto::unread`), read marks, total and filtered unread, the user's conversation
//! settings (pin, marks, custom data, receive options, folders, deletion), drafts, `@` info, the
//! C2C read receipt, and the conversation events.
//!
//! **Counts** come from two sources that must agree: the server's `ConvState` at sync (absolute:
//! `unread_count`, `read_seq`, `max_seq`) and live messages after it. A live message changes the
//! count only when its seq is above the conversation's known `max_seq` (otherwise the server's
//! state already counted it), so a push and a sync page covering the same message never count it
//! twice. The total leaves out conversations muted by their receive option ([`view`]).
//!
//! **Settings** are the server's: every change is a `UpdateConv` request, and its answer, the
//! push other devices get, and the settings carried by each sync page are applied by one function
//! ([`ConversationActor::apply_settings`]), so all devices converge. Drafts and `@` info are
//! local to the device.
//!
//! **Events** are decided by difference: a conversation's state is snapshotted when first touched
//! in a burst; at the end of the burst, a conversation that came into existence is announced as
//! new, one that was deleted as deleted, and one whose api.md object differs as changed (nothing
//! is announced when nothing visible changed). Totals and subscribed filtered totals are
//! announced when they moved.

pub mod change_cursor;
mod local_messages;
pub mod paging;
mod record;
pub mod view;

use std::collections::{BTreeMap, HashMap};

use actix::prelude::*;
use chime_proto::pb::{self, request, response};
use chime_proto::{codes, ids, unread};
use serde_json::{Value, json};

use super::connection::Rpc;
use super::{Account, CloseAccount, OpenAccount, Peers, Shared, decode};
use crate::codec;
use crate::model::{StoredGroup, StoredMessage};
use crate::store::{Store, WriteBatch, keys};
use crate::{ApiError, Result};
use change_cursor::ChangeCursor;
pub use local_messages::ClearConversationMessages;
use record::ConvRecord;
use view::Filter;

/// Most scanned local messages when counting unread after a partial read mark.
const LOCAL_UNREAD_SCAN: usize = 10_000;

/// Owns conversations.
pub struct ConversationActor {
    shared: Shared,
    peers: Option<Peers>,
    acct: Option<Account>,
    convs: HashMap<String, ConvRecord>,
    user_settings: pb::UserConvSettings,
    total: u64,
    /// Subscribed unread filters with their last announced count.
    subscriptions: Vec<(Filter, u64)>,
    /// State of each conversation touched in the current burst, before the burst (`None`: it
    /// did not exist).
    before: BTreeMap<String, Option<ConvRecord>>,
    /// Folders before the burst, when they changed in it.
    folders_before: Option<Vec<pb::ConvFolder>>,
    /// The user-level settings changed in this burst (to be written).
    user_dirty: bool,
    /// Every existing conversation's id in list order (pinned first, then newest), rebuilt on
    /// the first query after a change, so a page costs the page, not a sort.
    order: Option<Vec<String>>,
    flush_scheduled: bool,
    /// The device's position in the user's change log ([`change_cursor`]), persisted with the
    /// conversation records in [`Self::commit`].
    changes: ChangeCursor,
    /// The gap a sync is scheduled to close unless live changes fill it first.
    gap_watch: Option<u64>,
    /// What the current or last sync did ([`SyncStats`]).
    sync_stats: SyncStats,
}

/// Meta key of the versions applied above the change cursor (the cursor itself:
/// `keys::META_SYNC_CURSOR`).
const META_SYNC_PENDING: &str = "sync_pending";

/// How long a gap in the applied change versions may stay open before a sync closes it (live
/// changes reach this actor through several others, so a gap may be a change still on its way).
const GAP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What the login/reconnect syncs did: `get_sync_stats`.
#[derive(Debug, Clone, Copy, Default)]
struct SyncStats {
    /// Syncs finished since the account was opened.
    syncs: u64,
    /// Conversation states restated by every sync since the account was opened.
    total_conversations: u64,
    /// The cursor the last sync started from.
    from_cursor: u64,
    /// Conversation states its pages restated.
    conversations: u64,
    /// Its pages.
    pages: u64,
}

fn ready<T: 'static>(r: Result<T>) -> ResponseActFuture<ConversationActor, Result<T>> {
    Box::pin(actix::fut::ready(r))
}

fn mailbox(e: MailboxError) -> ApiError {
    ApiError::new(codes::ERR_SDK_INTERNAL, format!("engine actor: {e}"))
}

/// Parses a conversation id (6004 when malformed).
pub fn parse_conv_id(id: &str) -> Result<pb::ConvRef> {
    ids::parse_conversation_id(id).ok_or_else(|| {
        ApiError::new(
            codes::ERR_INVALID_CONVERSATION,
            format!("invalid conversation_id: {id}"),
        )
    })
}

impl ConversationActor {
    /// An actor with no account.
    pub fn new(shared: Shared) -> Self {
        Self {
            shared,
            peers: None,
            acct: None,
            convs: HashMap::new(),
            user_settings: pb::UserConvSettings::default(),
            total: 0,
            subscriptions: Vec::new(),
            before: BTreeMap::new(),
            folders_before: None,
            user_dirty: false,
            order: None,
            flush_scheduled: false,
            changes: ChangeCursor::default(),
            gap_watch: None,
            sync_stats: SyncStats::default(),
        }
    }

    /// A gap in the applied change versions (a change that no push brought here, such as a
    /// group tip's membership change) is closed by a sync if live changes have not filled it
    /// within [`GAP_WAIT`]; the sync restates only what changed since the gap.
    fn watch_gap(&mut self, ctx: &mut Context<Self>) {
        let Some(gap) = self.changes.gap() else {
            return;
        };
        if self.gap_watch.is_some() {
            return;
        }
        self.gap_watch = Some(gap);
        ctx.run_later(GAP_WAIT, |act, ctx| {
            let watched = act.gap_watch.take();
            match act.changes.gap() {
                Some(now) if Some(now) == watched => {
                    if let Some(p) = &act.peers {
                        p.msg.do_send(super::message::SyncNow);
                    }
                }
                // Filled; another one opened since: watch it afresh.
                Some(_) => act.watch_gap(ctx),
                None => {}
            }
        });
    }

    fn me(&self) -> &str {
        self.acct.as_ref().map_or("", |a| a.user.as_str())
    }

    fn acct(&self) -> Result<&Account> {
        self.acct
            .as_ref()
            .ok_or_else(|| ApiError::new(codes::ERR_SDK_NOT_LOGGED_IN, "not logged in"))
    }

    fn group_info(&self, group_id: &str) -> Option<StoredGroup> {
        let k = keys::group(group_id);
        let v = self.acct.as_ref()?.store.get(&k).ok()??;
        decode(&k, &v).ok()
    }

    /// Snapshots `id` (first touch in this burst) and answers its record, created if needed.
    fn touch(&mut self, id: &str) -> Option<&mut ConvRecord> {
        if !self.before.contains_key(id) {
            self.before
                .insert(id.to_owned(), self.convs.get(id).cloned());
        }
        if !self.convs.contains_key(id) {
            let c = ids::parse_conversation_id(id)?;
            let is_group = c.conv_type() == pb::ConvType::Group;
            let mut r = ConvRecord {
                conversation_id: id.to_owned(),
                is_group,
                target: c.target.clone(),
                show_name: c.target.clone(),
                ..Default::default()
            };
            if is_group && let Some(g) = self.group_info(&c.target) {
                r.group_type = g.group_type;
                if !g.name.is_empty() {
                    r.show_name = g.name;
                }
                r.face_url = g.face_url;
            }
            self.convs.insert(id.to_owned(), r);
        }
        self.convs.get_mut(id)
    }

    fn json(&self, r: &ConvRecord) -> Value {
        view::to_json(r, self.me(), &self.user_settings.folders)
    }

    /// Persists what the burst touched and announces what visibly changed.
    fn commit(&mut self) {
        let before = std::mem::take(&mut self.before);
        if !before.is_empty() || self.user_dirty {
            self.order = None;
        }
        let folders_before = self.folders_before.take();
        let old_folders = folders_before
            .clone()
            .unwrap_or_else(|| self.user_settings.folders.clone());
        let me = self.me().to_owned();
        let mut b = WriteBatch::new();
        let (mut new_list, mut changed_list, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
        for (id, old) in before {
            let Some(r) = self.convs.get(&id) else {
                continue;
            };
            // Unchanged (a login sync restating every conversation as it already is): the store
            // holds it already, and its object only changes with the folders.
            if old.as_ref() == Some(r) && folders_before.is_none() {
                continue;
            }
            b.put(keys::conversation(&id), prost::Message::encode_to_vec(r));
            let was = old.as_ref().is_some_and(view::exists);
            let now = view::exists(r);
            match (was, now) {
                (false, true) => new_list.push(self.json(r)),
                (true, false) => deleted.push(id.clone()),
                (true, true) => {
                    let after = self.json(r);
                    let visible = old.as_ref().is_some_and(|o| {
                        view::shown_fields_differ(o, r)
                            || view::to_json(o, &me, &old_folders) != after
                    });
                    if visible {
                        changed_list.push(after);
                    }
                }
                (false, false) => {}
            }
        }
        if std::mem::take(&mut self.user_dirty) {
            b.put(
                keys::conversation(USER_SETTINGS_KEY),
                prost::Message::encode_to_vec(&self.user_settings),
            );
        }
        // The change cursor in the same batch as the records its versions' changes produced:
        // never a cursor past state that is not stored.
        if self.changes.take_dirty() {
            b.put(
                keys::meta(keys::META_SYNC_CURSOR),
                self.changes.cursor().to_be_bytes().to_vec(),
            );
            b.put(keys::meta(META_SYNC_PENDING), self.changes.encode_pending());
        }
        if let Some(a) = &self.acct
            && !b.is_empty()
            && let Err(e) = a.store.apply(b)
        {
            tracing::warn!("conversation write: {e}");
        }
        let ev = self.shared.events.clone();
        if let Some(old) = folders_before {
            self.announce_folders(&old);
        }
        if !new_list.is_empty() {
            ev.emit(
                "on_new_conversation",
                crate::events::object("conversation_list", Value::Array(new_list)),
            );
        }
        if !changed_list.is_empty() {
            ev.emit(
                "on_conversation_changed",
                crate::events::object("conversation_list", Value::Array(changed_list)),
            );
        }
        if !deleted.is_empty() {
            ev.emit(
                "on_conversation_deleted",
                json!({ "conversation_ids": deleted }),
            );
        }
        let total = view::total_unread(self.convs.values());
        if total != self.total {
            self.total = total;
            ev.emit(
                "on_total_unread_message_count_changed",
                json!({ "total_unread_count": total }),
            );
        }
        let folders = &self.user_settings.folders;
        for (f, last) in &mut self.subscriptions {
            let n = view::filtered_unread(f, self.convs.values(), folders);
            if n != *last {
                *last = n;
                ev.emit(
                    "on_unread_message_count_changed_by_filter",
                    json!({ "filter": f.to_json(), "total_unread_count": n }),
                );
            }
        }
    }

    /// Folder events: what differs between `old` and the current folders.
    fn announce_folders(&self, old: &[pb::ConvFolder]) {
        let ev = &self.shared.events;
        let new = &self.user_settings.folders;
        let find = |list: &[pb::ConvFolder], n: &str| list.iter().position(|f| f.name == n);
        let gone: Vec<&pb::ConvFolder> = old
            .iter()
            .filter(|f| find(new, &f.name).is_none())
            .collect();
        let came: Vec<&pb::ConvFolder> = new
            .iter()
            .filter(|f| find(old, &f.name).is_none())
            .collect();
        let convs_json = |ids: &[String]| -> Vec<Value> {
            ids.iter()
                .filter_map(|id| self.convs.get(id))
                .map(|r| self.json(r))
                .collect()
        };
        if let ([g], [c]) = (gone.as_slice(), came.as_slice())
            && g.conversation_ids == c.conversation_ids
        {
            ev.emit(
                "on_conversation_group_name_changed",
                json!({ "old_name": g.name, "new_name": c.name }),
            );
            return;
        }
        for g in gone {
            ev.emit(
                "on_conversation_group_deleted",
                json!({ "group_name": g.name }),
            );
        }
        for c in came {
            ev.emit(
                "on_conversation_group_created",
                json!({ "group_name": c.name, "conversation_list": convs_json(&c.conversation_ids) }),
            );
        }
        for f in new {
            let Some(o) = old.iter().find(|o| o.name == f.name) else {
                continue;
            };
            let added: Vec<String> = f
                .conversation_ids
                .iter()
                .filter(|id| !o.conversation_ids.contains(id))
                .cloned()
                .collect();
            let removed: Vec<String> = o
                .conversation_ids
                .iter()
                .filter(|id| !f.conversation_ids.contains(id))
                .cloned()
                .collect();
            if !added.is_empty() {
                ev.emit(
                    "on_conversations_added_to_group",
                    json!({ "group_name": f.name, "conversation_list": convs_json(&added) }),
                );
            }
            if !removed.is_empty() {
                ev.emit(
                    "on_conversations_deleted_from_group",
                    json!({ "group_name": f.name, "conversation_ids": removed }),
                );
            }
        }
    }

    /// Like [`Self::commit`], deferred to the end of the current burst of mailbox messages (one
    /// event per burst instead of one per message).
    fn commit_later(&mut self, ctx: &mut Context<Self>) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(std::time::Duration::ZERO, |act, _| act.flush_dirty());
        }
    }

    fn flush_dirty(&mut self) {
        self.flush_scheduled = false;
        self.commit();
    }

    fn set_last(c: &mut ConvRecord, m: &StoredMessage) {
        if m.exclude_from_last_message {
            return;
        }
        let newer = c
            .last_message
            .as_ref()
            .is_none_or(|l| m.seq >= l.seq || (m.seq > 0 && l.seq == 0));
        if newer {
            c.orderkey = c.orderkey.max(u64::try_from(m.time_ms).unwrap_or(0));
            c.last_message = Some(m.clone());
        }
    }

    /// Applies settings from the server (an answer, a push or a sync page): the one place where
    /// synced settings enter the device.
    fn apply_settings(
        &mut self,
        entries: Vec<pb::ConvSettingsEntry>,
        user: Option<pb::UserConvSettings>,
    ) {
        for e in entries {
            self.changes.applied(e.change_version);
            let Some(c) = e.conv else { continue };
            let id = ids::conversation_id(&c);
            let Some(r) = self.touch(&id) else { continue };
            r.max_seq = r.max_seq.max(e.max_seq);
            if let Some(s) = e.settings {
                if s.deleted && r.max_seq <= s.deleted_seq {
                    // Deleted: read up to the deletion point on every device.
                    view::set_read(r, s.deleted_seq);
                    r.unread_count = 0;
                }
                r.settings = Some(s);
            }
        }
        if let Some(u) = user {
            self.set_user_settings(u);
        }
    }

    fn set_user_settings(&mut self, u: pb::UserConvSettings) {
        if u == self.user_settings {
            return;
        }
        self.user_dirty = true;
        if self.folders_before.is_none() && u.folders != self.user_settings.folders {
            self.folders_before = Some(self.user_settings.folders.clone());
            // Conversations whose folder list changes are re-announced.
            let ids: Vec<String> = u
                .folders
                .iter()
                .chain(self.user_settings.folders.iter())
                .flat_map(|f| f.conversation_ids.iter().cloned())
                .collect();
            for id in ids {
                if self.convs.contains_key(&id) {
                    self.touch(&id);
                }
            }
        }
        self.user_settings = u;
    }

    /// Unread messages of `conv` above `read_seq` among the locally stored ones (used after a
    /// partial read mark, which the server answers with the position only).
    fn local_unread(&self, conv: &str, read_seq: u64) -> u32 {
        let Some(a) = &self.acct else { return 0 };
        let lo = keys::message(conv, read_seq.saturating_add(1));
        let (_, hi) = keys::conv_bounds(keys::table::MESSAGE, conv);
        let Ok(page) = a.store.scan(&lo, &hi, false, LOCAL_UNREAD_SCAN) else {
            return 0;
        };
        let me = a.user.as_str();
        let n = page
            .iter()
            .filter_map(|(k, v)| decode::<StoredMessage>(k, v).ok())
            .filter(|m| unread::counts_as_unread(&codec::to_wire(m), me, read_seq))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Takes a server count of `id`'s unread messages, `unread`, taken when the conversation's
    /// max seq was `at_seq` (0: unknown, from an older server): the count plus the messages
    /// above `at_seq` this device already has (they reached it before the count did). Messages
    /// added later count only above `at_seq` ([`ConvRecord::counted_seq`]). Call after the read
    /// position moved.
    fn take_server_unread(&mut self, id: &str, unread: u32, at_seq: u64) {
        let Some(c) = self.convs.get(id) else { return };
        if at_seq == 0 {
            if let Some(c) = self.convs.get_mut(id) {
                c.unread_count = unread;
            }
            return;
        }
        let local_above = if c.max_seq > at_seq {
            self.local_unread(id, at_seq.max(c.read_seq))
        } else {
            0
        };
        if let Some(c) = self.convs.get_mut(id) {
            c.unread_count = unread.saturating_add(local_above);
            c.counted_seq = at_seq;
        }
    }

    /// The newest locally stored seq of `conv` with a time at or before `time_ms` (0 if none).
    fn seq_at_time(&self, conv: &str, time_ms: i64) -> u64 {
        let Some(a) = &self.acct else { return 0 };
        let (lo, hi) = keys::conv_bounds(keys::table::MESSAGE, conv);
        let Ok(page) = a.store.scan(&lo, &hi, true, LOCAL_UNREAD_SCAN) else {
            return 0;
        };
        page.iter()
            .filter_map(|(k, v)| decode::<StoredMessage>(k, v).ok())
            .find(|m| m.time_ms <= time_ms)
            .map_or(0, |m| m.seq)
    }

    fn known(&self, id: &str) -> Result<&ConvRecord> {
        parse_conv_id(id)?;
        self.convs
            .get(id)
            .filter(|r| view::exists(r))
            .ok_or_else(|| {
                ApiError::new(
                    codes::ERR_INVALID_CONVERSATION,
                    format!("unknown conversation: {id}"),
                )
            })
    }

    /// Rebuilds the list order if a change dropped it (see [`Self::order`]).
    fn ensure_order(&mut self) {
        if self.order.is_none() {
            let mut all: Vec<&ConvRecord> =
                self.convs.values().filter(|r| view::exists(r)).collect();
            all.sort_by(|a, b| view::order(a, b));
            self.order = Some(all.iter().map(|r| r.conversation_id.clone()).collect());
        }
    }

    /// The existing conversations in list order (call [`Self::ensure_order`] first).
    fn ordered(&self) -> impl Iterator<Item = &ConvRecord> {
        let ids = self.order.as_deref().unwrap_or_default();
        ids.iter().filter_map(|id| self.convs.get(id))
    }

    /// One page of `all` (in list order) after the position `next_seq` ([`paging`]); `all` is
    /// read only as far as the page needs.
    fn page<'a>(
        &self,
        all: impl Iterator<Item = &'a ConvRecord>,
        next_seq: u64,
        count: usize,
    ) -> Value {
        let mut seen = Vec::new();
        let positions = all.map(|r| {
            seen.push(r);
            view::position(r)
        });
        let (picked, next_seq, finished) = paging::page(positions, next_seq, count);
        let list: Vec<Value> = picked.iter().map(|&i| self.json(seen[i])).collect();
        json!({
            "conversation_list": list,
            "next_seq": next_seq,
            "is_finished": finished,
        })
    }
}

/// Sets `is_read` / `is_peer_read` of message objects rendered by another actor (history, find)
/// from the read positions of their conversations in the store.
pub fn set_read_flags(store: &dyn Store, me: &str, msgs: &[StoredMessage], out: &mut [Value]) {
    let mut positions: HashMap<String, (u64, u64)> = HashMap::new();
    for (m, j) in msgs.iter().zip(out.iter_mut()) {
        let id = m.conversation_id();
        let (read, peer) = *positions.entry(id).or_insert_with_key(|id| {
            let k = keys::conversation(id);
            store
                .get(&k)
                .ok()
                .flatten()
                .and_then(|v| decode::<ConvRecord>(&k, &v).ok())
                .map_or((0, 0), |r| (r.read_seq, r.peer_read_seq))
        });
        view::set_read_flags(j, m, me, read, peer);
    }
}

/// The store key (in the `c` table) of the user-level settings: conversation ids are printable
/// ASCII, so a name starting with NUL never collides with one.
const USER_SETTINGS_KEY: &str = "\0user_settings";

impl Actor for ConversationActor {
    type Context = Context<Self>;
}

/// Tells the actor its peers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPeers(pub Peers);

impl Handler<SetPeers> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: SetPeers, _: &mut Context<Self>) {
        self.peers = Some(msg.0);
    }
}

impl Handler<OpenAccount> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: OpenAccount, _: &mut Context<Self>) {
        self.convs.clear();
        self.before.clear();
        self.order = None;
        self.folders_before = None;
        self.subscriptions.clear();
        self.user_settings = pb::UserConvSettings::default();
        let (lo, hi) = keys::table_bounds(keys::table::CONVERSATION);
        let us_key = keys::conversation(USER_SETTINGS_KEY);
        match msg.0.store.scan(&lo, &hi, false, usize::MAX) {
            Ok(entries) => {
                // Sized once: growing a map of 10,000 records rehashes them all several times.
                self.convs = HashMap::with_capacity(entries.len());
                for (k, v) in entries {
                    if k == us_key {
                        match decode::<pb::UserConvSettings>(&k, &v) {
                            Ok(u) => self.user_settings = u,
                            Err(e) => tracing::warn!("{e}"),
                        }
                        continue;
                    }
                    match decode::<ConvRecord>(&k, &v) {
                        Ok(mut c) => {
                            if c.legacy_pinned && c.settings.is_none() {
                                c.settings = Some(pb::ConvSettings {
                                    pinned: true,
                                    ..Default::default()
                                });
                            }
                            self.convs.insert(c.conversation_id.clone(), c);
                        }
                        Err(e) => tracing::warn!("{e}"),
                    }
                }
            }
            Err(e) => tracing::warn!("loading conversations: {e}"),
        }
        self.changes = load_change_cursor(msg.0.store.as_ref());
        self.gap_watch = None;
        self.sync_stats = SyncStats::default();
        self.acct = Some(msg.0);
        self.total = view::total_unread(self.convs.values());
    }
}

/// The persisted change cursor of the account (a store that cannot be read: from 0, so the
/// next sync restates everything).
fn load_change_cursor(store: &dyn Store) -> ChangeCursor {
    let read = |name: &str| match store.get(&keys::meta(name)) {
        Ok(v) => v.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("loading the change cursor: {e}");
            Vec::new()
        }
    };
    let cursor =
        <[u8; 8]>::try_from(read(keys::META_SYNC_CURSOR).as_slice()).map_or(0, u64::from_be_bytes);
    ChangeCursor::restore(cursor, &read(META_SYNC_PENDING))
}

impl Handler<CloseAccount> for ConversationActor {
    type Result = ();
    fn handle(&mut self, _: CloseAccount, _: &mut Context<Self>) {
        self.flush_dirty();
        self.acct = None;
        self.convs.clear();
        self.subscriptions.clear();
        self.user_settings = pb::UserConvSettings::default();
        self.total = 0;
    }
}

/// Conversation states from a sync page, with the user-level settings.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplyStates(pub Vec<pb::ConvState>, pub Option<pb::UserConvSettings>);

impl Handler<ApplyStates> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: ApplyStates, _: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        let me = self.me().to_owned();
        let mut receipts = Vec::new();
        let mut settings = Vec::new();
        self.sync_stats.pages += 1;
        self.sync_stats.conversations += msg.0.len() as u64;
        self.sync_stats.total_conversations += msg.0.len() as u64;
        for s in msg.0 {
            let Some(cref) = &s.conv else { continue };
            let id = ids::conversation_id(cref);
            let last = s.last_message.as_ref().map(|m| codec::from_wire(m, &me));
            let Some(c) = self.touch(&id) else {
                continue;
            };
            c.max_seq = c.max_seq.max(s.max_seq);
            view::set_read(c, s.read_seq);
            self.take_server_unread(&id, s.unread_count, s.max_seq);
            let Some(c) = self.convs.get_mut(&id) else {
                continue;
            };
            c.min_seq = s.min_seq;
            if let Some(m) = last {
                Self::set_last(c, &m);
            }
            if s.peer_read_seq > c.peer_read_seq {
                c.peer_read_seq = s.peer_read_seq;
                receipts.push(json!({
                    "user_id": c.target,
                    "peer_read_seq": s.peer_read_seq,
                    "timestamp": super::now_ms() / 1000,
                    "is_peer_read": true,
                }));
            }
            if let Some(st) = s.settings {
                settings.push(pb::ConvSettingsEntry {
                    conv: s.conv.clone(),
                    settings: Some(st),
                    max_seq: s.max_seq,
                    change_version: 0,
                });
            }
        }
        self.apply_settings(settings, msg.1);
        if !receipts.is_empty() {
            self.shared.events.emit(
                "on_recv_c2c_read_receipt",
                json!({ "receipt_list": receipts }),
            );
        }
        self.commit();
    }
}

/// Messages newly in the store (`live`: from a push or a catch-up pull).
#[derive(Message)]
#[rtype(result = "()")]
pub struct MessagesAdded {
    /// The messages.
    pub msgs: Vec<StoredMessage>,
    /// Live (may count as unread) or history.
    pub live: bool,
}

impl Handler<MessagesAdded> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: MessagesAdded, ctx: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        let me = self.me().to_owned();
        for m in msg.msgs {
            let id = m.conversation_id();
            let Some(c) = self.touch(&id) else {
                continue;
            };
            c.max_seq = c.max_seq.max(m.seq);
            // Each message is added once (the receive pipeline dedupes by msg_id), in any seq
            // order: it is in the count already iff the last server count covered its seq.
            if msg.live
                && m.seq > c.counted_seq
                && unread::counts_as_unread(&codec::to_wire(&m), &me, c.read_seq)
            {
                c.unread_count += 1;
            }
            if msg.live {
                view::add_at(c, &m, &me);
            }
            Self::set_last(c, &m);
        }
        self.commit_later(ctx);
    }
}

/// The read position moved (another device, or the server's answer).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReadPushed(pub pb::ReadPush);

impl Handler<ReadPushed> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: ReadPushed, ctx: &mut Context<Self>) {
        let Some(cref) = &msg.0.conv else { return };
        let id = ids::conversation_id(cref);
        if let Some(c) = self.touch(&id) {
            view::set_read(c, msg.0.read_seq);
            self.take_server_unread(&id, msg.0.unread_count, msg.0.max_seq);
            self.changes.applied(msg.0.change_version);
            self.commit();
            self.watch_gap(ctx);
        }
    }
}

/// The peer of a C2C conversation read my messages (C2C read receipt).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerReadPushed(pub pb::PeerReadPush);

impl Handler<PeerReadPushed> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: PeerReadPushed, ctx: &mut Context<Self>) {
        let Some(cref) = &msg.0.conv else { return };
        let id = ids::conversation_id(cref);
        let Some(c) = self.touch(&id) else { return };
        if msg.0.peer_read_seq <= c.peer_read_seq {
            self.changes.applied(msg.0.change_version);
            self.commit();
            self.watch_gap(ctx);
            return;
        }
        c.peer_read_seq = msg.0.peer_read_seq;
        let receipt = json!({
            "user_id": c.target,
            "peer_read_seq": c.peer_read_seq,
            "timestamp": super::now_ms() / 1000,
            "is_peer_read": true,
        });
        self.shared.events.emit(
            "on_recv_c2c_read_receipt",
            json!({ "receipt_list": [receipt] }),
        );
        self.changes.applied(msg.0.change_version);
        self.commit();
        self.watch_gap(ctx);
    }
}

/// The user's settings changed on another device.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SettingsPushed(pub pb::ConvSettingsPush);

impl Handler<SettingsPushed> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: SettingsPushed, ctx: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        self.apply_settings(msg.0.convs, msg.0.user);
        self.commit();
        self.watch_gap(ctx);
    }
}

/// The api.md receipt object of a message read receipt.
pub fn receipt_json(r: &pb::MessageReceipt) -> Value {
    let (user_id, group_id) = match &r.conv {
        Some(c) if c.conv_type() == pb::ConvType::Group => ("", c.target.as_str()),
        Some(c) => (c.target.as_str(), ""),
        None => ("", ""),
    };
    json!({
        "msg_id": r.msg_id,
        "conversation_id": r.conv.as_ref().map(ids::conversation_id).unwrap_or_default(),
        "user_id": user_id,
        "group_id": group_id,
        "seq": r.seq,
        "read_count": r.read_count,
        "unread_count": r.unread_count,
        "is_peer_read": r.is_peer_read,
        "timestamp": super::now_ms() / 1000,
    })
}

/// Someone read messages of mine that asked for a receipt.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReceiptsPushed(pub pb::MessageReceiptPush);

impl Handler<ReceiptsPushed> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: ReceiptsPushed, _: &mut Context<Self>) {
        let list: Vec<Value> = msg.0.receipts.iter().map(receipt_json).collect();
        if !list.is_empty() {
            self.shared.events.emit(
                "on_recv_message_read_receipts",
                json!({ "receipt_list": list }),
            );
        }
    }
}

/// Marks one conversation read up to `read_seq` (0 = everything).
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct MarkRead(pub pb::ConvRef, pub u64);

impl Handler<MarkRead> for ConversationActor {
    type Result = ResponseActFuture<Self, Result<Value>>;
    fn handle(&mut self, msg: MarkRead, _: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.acct() {
            return ready(Err(e));
        }
        let Some(peers) = self.peers.clone() else {
            return ready(Err(ApiError::new(codes::ERR_SDK_INTERNAL, "not wired")));
        };
        let MarkRead(cref, read_seq) = msg;
        let fut = peers
            .conn
            .send(Rpc(request::Kind::MarkRead(pb::MarkReadReq {
                conv: Some(cref.clone()),
                read_seq,
            })));
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            let resp = res.map_err(mailbox).and_then(|r| r)?;
            let (read_seq, version) = match resp.kind {
                Some(response::Kind::MarkRead(r)) => (r.read_seq, r.change_version),
                _ => (0, 0),
            };
            let id = ids::conversation_id(&cref);
            let unread = act
                .convs
                .get(&id)
                .filter(|c| read_seq < c.max_seq)
                .map(|_| act.local_unread(&id, read_seq));
            if let Some(c) = act.touch(&id) {
                view::set_read(c, read_seq);
                c.unread_count = unread.unwrap_or(0);
                act.changes.applied(version);
                act.commit();
                act.watch_gap(ctx);
            }
            Ok(json!({}))
        }))
    }
}

/// Which conversations `clean_conversation_unread_message_count` cleans.
#[derive(Debug, Clone)]
pub enum CleanTarget {
    /// Every conversation.
    All,
    /// Every conversation of a type (true = groups).
    Type(bool),
    /// One conversation up to a seq (0 = all) or a time (ms, 0 = none).
    One {
        /// The conversation.
        id: String,
        /// Up to this seq.
        seq: u64,
        /// Up to this time (ms).
        time_ms: i64,
    },
}

/// What cleaning needs: the read marks to send (conversation, up-to seq) and the conversations
/// whose unread mark must be cleared.
#[derive(Message)]
#[rtype(result = "Result<(Vec<(pb::ConvRef, u64)>, Vec<String>)>")]
pub struct CleanPlan(pub CleanTarget);

impl Handler<CleanPlan> for ConversationActor {
    type Result = Result<(Vec<(pb::ConvRef, u64)>, Vec<String>)>;
    fn handle(&mut self, msg: CleanPlan, _: &mut Context<Self>) -> Self::Result {
        self.acct()?;
        let needs =
            |r: &ConvRecord| r.unread_count > 0 || r.read_seq < r.max_seq || !r.at_infos.is_empty();
        let marked = |r: &ConvRecord| view::effective_marks(r) & view::mark::UNREAD != 0;
        let mut reads = Vec::new();
        let mut marks = Vec::new();
        match msg.0 {
            CleanTarget::One { id, seq, time_ms } => {
                let cref = parse_conv_id(&id)?;
                let upto = if time_ms > 0 {
                    self.seq_at_time(&id, time_ms)
                } else {
                    seq
                };
                if time_ms == 0 || upto > 0 {
                    reads.push((cref, upto));
                }
                if self.convs.get(&id).is_some_and(marked) {
                    marks.push(id);
                }
            }
            target => {
                let mut ids: Vec<&ConvRecord> = self
                    .convs
                    .values()
                    .filter(|r| view::exists(r))
                    .filter(|r| match &target {
                        CleanTarget::Type(g) => r.is_group == *g,
                        _ => true,
                    })
                    .collect();
                ids.sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
                for r in ids {
                    if needs(r)
                        && let Some(c) = ids::parse_conversation_id(&r.conversation_id)
                    {
                        reads.push((c, 0));
                    }
                    if marked(r) {
                        marks.push(r.conversation_id.clone());
                    }
                }
            }
        }
        Ok((reads, marks))
    }
}

/// A settings change, sent to the server and applied from its answer.
#[derive(Message)]
#[rtype(result = "Result<pb::UpdateConvResp>")]
pub struct Update {
    /// The conversations (ids already validated by the caller).
    pub convs: Vec<pb::ConvRef>,
    /// The change.
    pub change: pb::update_conv_req::Change,
    /// Every conversation must exist on this device (6004 otherwise).
    pub must_exist: bool,
}

impl Handler<Update> for ConversationActor {
    type Result = ResponseActFuture<Self, Result<pb::UpdateConvResp>>;
    fn handle(&mut self, msg: Update, _: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.acct() {
            return ready(Err(e));
        }
        if msg.must_exist {
            for c in &msg.convs {
                if let Err(e) = self.known(&ids::conversation_id(c)) {
                    return ready(Err(e));
                }
            }
        }
        let Some(peers) = self.peers.clone() else {
            return ready(Err(ApiError::new(codes::ERR_SDK_INTERNAL, "not wired")));
        };
        let fut = peers
            .conn
            .send(Rpc(request::Kind::UpdateConv(pb::UpdateConvReq {
                convs: msg.convs,
                change: Some(msg.change),
            })));
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            let resp = res.map_err(mailbox).and_then(|r| r)?;
            let Some(response::Kind::UpdateConv(u)) = resp.kind else {
                return Err(ApiError::new(
                    codes::ERR_PARSE_RESPONSE,
                    "update answer without UpdateConvResp",
                ));
            };
            act.apply_settings(u.convs.clone(), u.user.clone());
            act.commit();
            act.watch_gap(ctx);
            Ok(u)
        }))
    }
}

/// `set_conversation_draft` (local only; survives restarts, never sent).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct SetDraft {
    /// The conversation.
    pub id: String,
    /// The draft ("" cancels it).
    pub text: String,
}

impl Handler<SetDraft> for ConversationActor {
    type Result = Result<()>;
    fn handle(&mut self, msg: SetDraft, _: &mut Context<Self>) -> Self::Result {
        self.known(&msg.id)?;
        let Some(c) = self.touch(&msg.id) else {
            return Err(ApiError::new(
                codes::ERR_INVALID_CONVERSATION,
                "invalid conversation_id",
            ));
        };
        c.draft_timestamp = if msg.text.is_empty() {
            0
        } else {
            super::now_ms() / 1000
        };
        c.draft_text = msg.text;
        self.commit();
        Ok(())
    }
}

/// What a conversation query returns.
#[derive(Debug, Clone)]
pub enum Query {
    /// `get_conversation_list`: a page of the listed conversations.
    List {
        /// Offset cursor.
        next_seq: u64,
        /// Page size.
        count: usize,
    },
    /// `get_conversation_list_by_filter`.
    ByFilter {
        /// The filter.
        filter: Filter,
        /// Offset cursor.
        next_seq: u64,
        /// Page size.
        count: usize,
    },
    /// `get_conversation`.
    One(String),
    /// `get_conversation_list_by_ids` (unknown ids are left out).
    ByIds(Vec<String>),
    /// `get_total_unread_message_count`.
    TotalUnread,
    /// `get_unread_message_count_by_filter`.
    FilteredUnread(Filter),
    /// `subscribe_unread_message_count_by_filter`.
    Subscribe(Filter),
    /// `unsubscribe_unread_message_count_by_filter`.
    Unsubscribe(Filter),
    /// `get_conversation_group_list`.
    Folders,
    /// `get_c2c_receive_message_opt`.
    C2cRecvOpts(Vec<String>),
    /// `get_all_receive_message_opt`.
    AllRecvOpt,
    /// `get_sync_stats`: the change cursor and what the last sync restated.
    SyncStats,
}

impl Message for Query {
    type Result = Result<Value>;
}

impl Handler<Query> for ConversationActor {
    type Result = Result<Value>;
    fn handle(&mut self, q: Query, _: &mut Context<Self>) -> Self::Result {
        self.acct()?;
        if matches!(q, Query::List { .. } | Query::ByFilter { .. }) {
            self.ensure_order();
        }
        let folders = &self.user_settings.folders;
        match q {
            Query::List { next_seq, count } => {
                let all = self.ordered().filter(|r| view::listed(r));
                Ok(self.page(all, next_seq, count))
            }
            Query::ByFilter {
                filter,
                next_seq,
                count,
            } => {
                let all = self.ordered().filter(|r| filter.matches(r, folders));
                Ok(self.page(all, next_seq, count))
            }
            Query::One(id) => Ok(self.json(self.known(&id)?)),
            Query::ByIds(list) => {
                let mut out = Vec::new();
                for id in &list {
                    parse_conv_id(id)?;
                    if let Some(r) = self.convs.get(id).filter(|r| view::exists(r)) {
                        out.push(self.json(r));
                    }
                }
                Ok(json!({ "conversation_list": out }))
            }
            Query::TotalUnread => Ok(json!({
                "total_unread_count": view::total_unread(self.convs.values())
            })),
            Query::FilteredUnread(f) => Ok(json!({
                "total_unread_count": view::filtered_unread(&f, self.convs.values(), folders)
            })),
            Query::Subscribe(f) => {
                let n = view::filtered_unread(&f, self.convs.values(), folders);
                if !self.subscriptions.iter().any(|(s, _)| *s == f) {
                    self.subscriptions.push((f, n));
                }
                Ok(json!({ "total_unread_count": n }))
            }
            Query::Unsubscribe(f) => {
                self.subscriptions.retain(|(s, _)| *s != f);
                Ok(json!({}))
            }
            Query::Folders => Ok(json!({
                "group_name_list": folders.iter().map(|f| f.name.clone()).collect::<Vec<_>>()
            })),
            Query::C2cRecvOpts(users) => {
                let list: Vec<Value> = users
                    .iter()
                    .map(|u| {
                        let opt = self
                            .convs
                            .get(&format!("c2c_{u}"))
                            .map_or(0, view::recv_opt);
                        json!({ "user_id": u, "c2c_receive_message_opt": view::recv_opt_str(opt) })
                    })
                    .collect();
                Ok(json!({ "receive_opt_list": list }))
            }
            Query::SyncStats => {
                let s = self.sync_stats;
                Ok(json!({
                    "change_cursor": self.changes.cursor(),
                    "pending_change_count": self.changes.pending(),
                    "sync_count": s.syncs,
                    "restated_conversation_count": s.total_conversations,
                    "last_sync_from_cursor": s.from_cursor,
                    "last_sync_conversation_count": s.conversations,
                    "last_sync_page_count": s.pages,
                }))
            }
            Query::AllRecvOpt => {
                let o = self.user_settings.all_recv_opt.unwrap_or_default();
                Ok(json!({
                    "opt": view::recv_opt_str(o.opt),
                    "start_hour": o.start_hour,
                    "start_minute": o.start_minute,
                    "start_second": o.start_second,
                    "start_time_stamp": o.start_time_stamp,
                    "duration": o.duration,
                }))
            }
        }
    }
}

/// Change versions whose changes are stored (messages pushed or acked: the message store has
/// them and the conversation records follow in this actor's current burst).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChangesApplied(pub Vec<u64>);

impl Handler<ChangesApplied> for ConversationActor {
    type Result = ();
    fn handle(&mut self, msg: ChangesApplied, ctx: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        for v in msg.0 {
            self.changes.applied(v);
        }
        self.commit_later(ctx);
        self.watch_gap(ctx);
    }
}

/// A sync page is asked for: answers the change cursor to send.
#[derive(Message)]
#[rtype(result = "Result<u64>")]
pub struct SyncStart {
    /// The sync's first page.
    pub first: bool,
}

impl Handler<SyncStart> for ConversationActor {
    type Result = Result<u64>;
    fn handle(&mut self, msg: SyncStart, _: &mut Context<Self>) -> Self::Result {
        self.acct()?;
        let from = self.changes.cursor();
        if !msg.first {
            return Ok(from);
        }
        self.sync_stats = SyncStats {
            from_cursor: from,
            conversations: 0,
            pages: 0,
            ..self.sync_stats
        };
        Ok(from)
    }
}

/// A sync page is applied (its states here, its messages in the message store): the cursor
/// moves past it, written with everything deferred so far.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct SyncCommitted {
    /// The page's cursor.
    pub cursor: u64,
    /// The last page of the sync.
    pub last: bool,
}

impl Handler<SyncCommitted> for ConversationActor {
    type Result = Result<()>;
    fn handle(&mut self, msg: SyncCommitted, _: &mut Context<Self>) -> Self::Result {
        self.acct()?;
        self.changes.synced(msg.cursor);
        if msg.last {
            self.sync_stats.syncs += 1;
        }
        self.flush_dirty();
        Ok(())
    }
}
