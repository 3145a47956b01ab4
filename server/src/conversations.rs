//! The user's conversation settings: pin, marks, custom data, receive options (DND), deletion,
//! folders and the global receive option — everything of a conversation that is the user's own
//! choice rather than a consequence of messages.
//!
//! They live on the server so that every device of the user converges on them: a change is one
//! [`Op::UpdateConv`](crate::commit::Op) applied by the commit task, which stores it, moves the
//! conversation in the user's change log (so a device that was offline gets it at its next sync)
//! and pushes the new settings to the user's other online devices. Sync answers carry each
//! conversation's settings and the user-level settings ([`sync`]), so one code path in the engine
//! applies a push, a response and a sync page alike.
//!
//! Deletion and hiding are recorded as seqs, not flags: a conversation deleted (or hidden) at seq
//! N comes back when a message above N arrives, on every device, without anyone having to clear
//! the flag. Deleting with `clear_message` also records `cleared_seq`, below which this user is
//! no longer served the conversation's messages ([`pull`]).
//!
//! The receive option `not_receive` stops delivery, not just notification: while it is set, the
//! conversation's messages from others are not pushed to the user, do not move the user's change
//! log, and are never served to the user by pull or sync, even after the option is turned back
//! on ([`RecvGaps`]: the seq spans it covered). Group tips still reach the user (membership and
//! profile events keep working).
//!
//! The C2C read receipt rides on the read position: when a user marks a C2C conversation read,
//! the peer is pushed a [`pb::PeerReadPush`] and its change log moves, so the peer's sync carries
//! `peer_read_seq` after a reconnect too ([`peer_read_effects`]).

use std::collections::HashSet;
use std::sync::Arc;

use chime_proto::pb::{self, response::Kind as RespKind};
use chime_proto::{codes, ids, unread};
use prost::Message as _;

use crate::commit::{Core, Effect};
use crate::config::Tunables;
use crate::error::{ApiError, ApiResult, StoreError};
use crate::keys::{self, Key, tag};
use crate::queries;
use crate::store::Store;
use crate::txn::Txn;

/// Invalid parameters of a conversation request (the seed's `ERR_SVR_CONV_INVALID_PARAMETERS`).
pub const ERR_CONV_INVALID_PARAMS: i32 = 50002;
/// Too many conversations in one request.
pub const ERR_CONV_TOO_MANY: i32 = 51006;
/// No such conversation folder.
pub const ERR_CONV_FOLDER_NOT_FOUND: i32 = 51009;
/// Too many conversation folders.
pub const ERR_CONV_FOLDER_LIMIT: i32 = 51010;
/// Conversation folder name too long.
pub const ERR_CONV_FOLDER_NAME_TOO_LONG: i32 = 51011;

/// Most conversations in one request.
pub const MAX_CONVS_PER_REQUEST: usize = 100;
/// Most folders per user.
pub const MAX_FOLDERS: usize = 20;
/// Longest folder name in bytes.
pub const MAX_FOLDER_NAME_BYTES: usize = 32;
/// Longest conversation custom data in bytes.
pub const MAX_CUSTOM_DATA_BYTES: usize = 256;
/// The hide mark bit.
pub const MARK_HIDE: u64 = 8;
/// Highest receive option value (`not_notify_except_at`).
pub const MAX_RECV_OPT: i32 = 3;
/// The receive option that stops delivery (`not_receive`).
pub const RECV_OPT_NOT_RECEIVE: i32 = 1;
/// Most messages scanned back for a conversation's last message that `not_receive` left out.
const LAST_MESSAGE_SCAN: usize = 200;

fn invalid(desc: impl Into<String>) -> ApiError {
    ApiError::new(ERR_CONV_INVALID_PARAMS, desc)
}

fn settings_key(app: u64, user: &str, conv: &[u8]) -> Vec<u8> {
    Key::new(tag::CONV_SETTINGS, app)
        .s(user.as_bytes())
        .s(conv)
        .done()
}

fn user_settings_key(app: u64, user: &str) -> Vec<u8> {
    Key::new(tag::USER_CONV_SETTINGS, app)
        .s(user.as_bytes())
        .done()
}

fn decode<T: prost::Message + Default>(v: Option<Vec<u8>>) -> Result<T, StoreError> {
    match v {
        None => Ok(T::default()),
        Some(b) => Ok(T::decode(&b[..])?),
    }
}

/// The store key of a conversation seen by `user`, after validating its id.
fn conv_key(user: &str, c: &pb::ConvRef) -> ApiResult<Vec<u8>> {
    match c.conv_type() {
        pb::ConvType::C2c if ids::is_valid_user_id(&c.target) => {
            Ok(keys::c2c_conv(user, &c.target))
        }
        pb::ConvType::C2c => Err(ApiError::new(codes::ERR_INVALID_USER_ID, "invalid user id")),
        pb::ConvType::Group if ids::is_valid_group_id(&c.target) => Ok(keys::group_conv(&c.target)),
        pb::ConvType::Group => Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            "invalid group id",
        )),
        pb::ConvType::Unspecified => Err(invalid("conv_type is required")),
    }
}

fn recv_off_key(app: u64, conv: &[u8], user: &str) -> Vec<u8> {
    Key::new(tag::RECV_OFF, app)
        .s(conv)
        .s(user.as_bytes())
        .done()
}

fn recv_gaps_key(app: u64, user: &str, conv: &[u8]) -> Vec<u8> {
    Key::new(tag::RECV_GAPS, app)
        .s(user.as_bytes())
        .s(conv)
        .done()
}

/// The seq spans of one user's conversation during which its receive option was
/// `not_receive` (I/O-free): `(from, to]` pairs, the last one open (`to = u64::MAX`) while the
/// option is still set. Messages from others in a span are never delivered to the user; the
/// user's own messages and group tips are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecvGaps(pub Vec<(u64, u64)>);

impl RecvGaps {
    /// Decodes the stored pairs (a trailing partial pair is ignored).
    pub fn decode(bytes: &[u8]) -> Self {
        Self(
            bytes
                .chunks_exact(16)
                .filter_map(|c| Some((keys::be_u64(c, 0)?, keys::be_u64(c, 8)?)))
                .collect(),
        )
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.0.len() * 16);
        for (from, to) in &self.0 {
            v.extend_from_slice(&from.to_be_bytes());
            v.extend_from_slice(&to.to_be_bytes());
        }
        v
    }

    /// Whether `seq` lies in a span.
    pub fn covers(&self, seq: u64) -> bool {
        self.0.iter().any(|&(from, to)| seq > from && seq <= to)
    }

    /// Whether `m` is withheld from `user`: from someone else, not group tips, in a span.
    pub fn hides(&self, m: &pb::Message, user: &str) -> bool {
        m.sender != user && !is_tips(m) && self.covers(m.seq)
    }

    /// Records a closed span `(from, to]` (nothing if empty).
    pub fn close(&mut self, from: u64, to: u64) {
        if to > from {
            self.0.push((from, to));
        }
    }
}

fn is_tips(m: &pb::Message) -> bool {
    m.elems
        .iter()
        .any(|e| matches!(e.content, Some(pb::elem::Content::GroupTips(_))))
}

/// Whether `user` receives the messages of `conv` (its receive option is not `not_receive`).
pub(crate) fn receives(txn: &Txn<'_>, app: u64, user: &str, conv: &[u8]) -> ApiResult<bool> {
    Ok(txn.get(&recv_off_key(app, conv, user))?.is_none())
}

/// The users whose receive option for `conv` is `not_receive`.
pub(crate) fn not_receiving(
    store: &dyn Store,
    app: u64,
    conv: &[u8],
) -> Result<HashSet<String>, StoreError> {
    let (lo, hi) = Key::new(tag::RECV_OFF, app).s(conv).prefix_range();
    let prefix = lo.len();
    Ok(store
        .scan(&lo, &hi, usize::MAX, false)?
        .into_iter()
        .filter_map(|(k, _)| keys::trailing_str(&k, prefix))
        .collect())
}

/// The `not_receive` spans of `user`'s `conv`, the open one included.
fn load_gaps(store: &dyn Store, app: u64, user: &str, conv: &[u8]) -> Result<RecvGaps, StoreError> {
    let mut gaps = RecvGaps::decode(
        &store
            .get(&recv_gaps_key(app, user, conv))?
            .unwrap_or_default(),
    );
    if let Some(v) = store.get(&recv_off_key(app, conv, user))? {
        gaps.0.push((keys::be_u64(&v, 0).unwrap_or(0), u64::MAX));
    }
    Ok(gaps)
}

/// One conversation's receive option going from `old` to `new` at head seq `head`.
struct RecvOptChange<'a> {
    conv_ref: &'a pb::ConvRef,
    conv: &'a [u8],
    old: i32,
    new: i32,
    head: u64,
}

/// Stages a receive-option change of `user` for `conv` whose head is `head`: opens a
/// `not_receive` span when the option becomes `not_receive`, closes it when it stops being, and
/// keeps the cached group state's `not_receive` set in step.
fn stage_recv_opt(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    change: RecvOptChange<'_>,
) -> ApiResult<()> {
    let RecvOptChange {
        conv_ref,
        conv,
        old,
        new,
        head,
    } = change;
    let (was_off, is_off) = (old == RECV_OPT_NOT_RECEIVE, new == RECV_OPT_NOT_RECEIVE);
    if was_off == is_off {
        return Ok(());
    }
    let off_key = recv_off_key(app, conv, user);
    if is_off {
        txn.put(off_key, head.to_be_bytes().to_vec());
    } else {
        let from = txn.get_u64(&off_key)?;
        txn.del(off_key);
        let gaps_key = recv_gaps_key(app, user, conv);
        let mut gaps = RecvGaps::decode(&txn.get(&gaps_key)?.unwrap_or_default());
        gaps.close(from, head);
        if !gaps.0.is_empty() {
            txn.put(gaps_key, gaps.encode());
        }
    }
    if conv_ref.conv_type() == pb::ConvType::Group
        && let Some(g) = core.groups.get_mut(&(app, conv_ref.target.clone()))
    {
        let g = Arc::make_mut(g);
        if is_off {
            g.not_receive.insert(user.to_owned());
        } else {
            g.not_receive.remove(user);
        }
    }
    Ok(())
}

/// Applies a folder change to the user's folders (I/O-free).
pub fn apply_folder_change(
    folders: &mut Vec<pb::ConvFolder>,
    change: &pb::FolderChange,
    conv_ids: &[String],
) -> ApiResult<()> {
    let check_name = |n: &str| -> ApiResult<()> {
        if n.is_empty() {
            Err(invalid("folder name is empty"))
        } else if n.len() > MAX_FOLDER_NAME_BYTES {
            Err(ApiError::new(
                ERR_CONV_FOLDER_NAME_TOO_LONG,
                "folder name over 32 bytes",
            ))
        } else {
            Ok(())
        }
    };
    let find = |folders: &[pb::ConvFolder], n: &str| folders.iter().position(|f| f.name == n);
    let not_found = || ApiError::new(ERR_CONV_FOLDER_NOT_FOUND, "no such conversation folder");
    match change.op() {
        pb::FolderOp::Create => {
            check_name(&change.name)?;
            if find(folders, &change.name).is_some() {
                return Err(invalid("a folder with that name exists"));
            }
            if folders.len() >= MAX_FOLDERS {
                return Err(ApiError::new(
                    ERR_CONV_FOLDER_LIMIT,
                    "at most 20 conversation folders",
                ));
            }
            let mut ids: Vec<String> = Vec::new();
            for id in conv_ids {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
            folders.push(pb::ConvFolder {
                name: change.name.clone(),
                conversation_ids: ids,
            });
        }
        pb::FolderOp::Delete => {
            let i = find(folders, &change.name).ok_or_else(not_found)?;
            folders.remove(i);
        }
        pb::FolderOp::Rename => {
            check_name(&change.new_name)?;
            let i = find(folders, &change.name).ok_or_else(not_found)?;
            if change.new_name != change.name && find(folders, &change.new_name).is_some() {
                return Err(invalid("a folder with the new name exists"));
            }
            folders[i].name = change.new_name.clone();
        }
        pb::FolderOp::Add => {
            let i = find(folders, &change.name).ok_or_else(not_found)?;
            for id in conv_ids {
                if !folders[i].conversation_ids.contains(id) {
                    folders[i].conversation_ids.push(id.clone());
                }
            }
        }
        pb::FolderOp::Remove => {
            let i = find(folders, &change.name).ok_or_else(not_found)?;
            folders[i]
                .conversation_ids
                .retain(|id| !conv_ids.contains(id));
        }
        pb::FolderOp::Unspecified => return Err(invalid("folder op is required")),
    }
    Ok(())
}

/// Applies a per-conversation change to one conversation's settings, given the conversation's
/// newest seq (I/O-free). Answers whether the read position must move to `head` (deletion).
pub fn apply_conv_change(
    s: &mut pb::ConvSettings,
    change: &pb::update_conv_req::Change,
    head: u64,
) -> ApiResult<bool> {
    use pb::update_conv_req::Change;
    match change {
        Change::Pin(p) => s.pinned = *p,
        Change::Mark(m) => {
            if m.mark == 0 {
                return Err(invalid("mark_type is required"));
            }
            if m.enable {
                s.marks |= m.mark;
                if m.mark & MARK_HIDE != 0 {
                    s.hide_seq = head;
                }
            } else {
                s.marks &= !m.mark;
            }
        }
        Change::CustomData(d) => {
            if d.len() > MAX_CUSTOM_DATA_BYTES {
                return Err(invalid("custom_data over 256 bytes"));
            }
            s.custom_data = d.clone();
        }
        Change::RecvOpt(o) => {
            if !(0..=MAX_RECV_OPT).contains(o) {
                return Err(invalid("unknown receive option"));
            }
            s.recv_opt = *o;
        }
        Change::Delete(d) => {
            s.deleted = true;
            s.deleted_seq = head;
            s.pinned = false;
            if d.clear_message {
                s.cleared_seq = head;
            }
            return Ok(true);
        }
        Change::Folder(_) | Change::AllRecvOpt(_) => {
            return Err(invalid("not a conversation change"));
        }
    }
    Ok(false)
}

fn check_all_recv_opt(o: &pb::AllRecvOpt) -> ApiResult<()> {
    if !(0..=MAX_RECV_OPT).contains(&o.opt) {
        return Err(invalid("unknown receive option"));
    }
    if o.start_hour > 23 || o.start_minute > 59 || o.start_second > 59 {
        return Err(invalid("start time out of range"));
    }
    if o.start_time_stamp < 0 {
        return Err(invalid("start_time_stamp must not be negative"));
    }
    Ok(())
}

/// `UpdateConv`: stages one settings change of `user` (run by the commit task).
pub(crate) fn update(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    req: pb::UpdateConvReq,
    skip: u64,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    use pb::update_conv_req::Change;
    let change = req.change.ok_or_else(|| invalid("a change is required"))?;
    if req.convs.len() > MAX_CONVS_PER_REQUEST {
        return Err(ApiError::new(
            ERR_CONV_TOO_MANY,
            "at most 100 conversations per request",
        ));
    }
    let mut convs: Vec<(pb::ConvRef, Vec<u8>)> = Vec::new();
    for c in &req.convs {
        let k = conv_key(user, c)?;
        if !convs.iter().any(|(_, x)| *x == k) {
            convs.push((c.clone(), k));
        }
    }
    let mut resp = pb::UpdateConvResp::default();
    let mut touches = Vec::new();
    match &change {
        Change::Folder(f) => {
            let key = user_settings_key(app, user);
            let mut us: pb::UserConvSettings = decode(txn.get(&key)?)?;
            let ids: Vec<String> = convs.iter().map(|(c, _)| ids::conversation_id(c)).collect();
            apply_folder_change(&mut us.folders, f, &ids)?;
            txn.put(key, us.encode_to_vec());
            resp.user = Some(us);
        }
        Change::AllRecvOpt(o) => {
            check_all_recv_opt(o)?;
            let key = user_settings_key(app, user);
            let mut us: pb::UserConvSettings = decode(txn.get(&key)?)?;
            us.all_recv_opt = Some(*o);
            txn.put(key, us.encode_to_vec());
            resp.user = Some(us);
        }
        per_conv => {
            if convs.is_empty() {
                return Err(invalid("conversation ids are required"));
            }
            // Validate everything before writing anything.
            let mut staged = Vec::with_capacity(convs.len());
            for (c, k) in &convs {
                let key = settings_key(app, user, k);
                let mut s: pb::ConvSettings = decode(txn.get(&key)?)?;
                let old_recv_opt = s.recv_opt;
                let head = txn.get_u64(&Key::new(tag::HEAD, app).s(k).done())?;
                let read_moves = apply_conv_change(&mut s, per_conv, head)?;
                staged.push((c.clone(), k.clone(), key, s, head, read_moves, old_recv_opt));
            }
            for (c, k, key, s, head, read_moves, old_recv_opt) in staged {
                let change = RecvOptChange {
                    conv_ref: &c,
                    conv: &k,
                    old: old_recv_opt,
                    new: s.recv_opt,
                    head,
                };
                stage_recv_opt(core, txn, app, user, change)?;
                txn.put(key, s.encode_to_vec());
                touches.push(txn.touch(app, user, &k));
                if read_moves {
                    let read_key = Key::new(tag::READ, app).s(user.as_bytes()).s(&k).done();
                    if txn.get_u64(&read_key)? < head {
                        txn.put(read_key, head.to_be_bytes().to_vec());
                        // The change's version travels with the settings push that follows
                        // (one version, one carrier: a device that has the settings push has
                        // this one before it).
                        fx.push(Effect::Read {
                            app,
                            user: user.to_owned(),
                            conv: c.clone(),
                            conv_key: k.clone(),
                            read_seq: head,
                            skip,
                            change: crate::change_log::ChangeVersion::None,
                        });
                    }
                }
                resp.convs.push(pb::ConvSettingsEntry {
                    conv: Some(c),
                    settings: Some(s),
                    max_seq: head,
                    change_version: 0,
                });
            }
        }
    }
    // Per conversation, its change's version (answer and push alike, [`crate::change_log`]).
    core.reply_touches.extend(touches.iter().copied());
    let push = pb::ConvSettingsPush {
        convs: resp.convs.clone(),
        user: resp.user.clone(),
    };
    fx.push(Effect::Change {
        app,
        user: user.to_owned(),
        skip,
        touches,
        push: crate::change_log::ChangePush::Settings(push),
    });
    Ok(RespKind::UpdateConv(resp))
}

/// The C2C read receipt: after `reader` moved its read position in the C2C conversation with
/// `conv_ref.target` to `read_seq`, tell the peer (push) and move the peer's change log so that
/// its next sync carries the new `peer_read_seq`.
pub(crate) fn peer_read_effects(
    txn: &mut Txn<'_>,
    app: u64,
    reader: &str,
    conv_ref: &pb::ConvRef,
    conv: &[u8],
    read_seq: u64,
    fx: &mut Vec<Effect>,
) {
    if conv_ref.conv_type() != pb::ConvType::C2c || conv_ref.target == reader {
        return;
    }
    let peer = conv_ref.target.clone();
    let touch = txn.touch(app, &peer, conv);
    let push = pb::PeerReadPush {
        conv: Some(pb::ConvRef {
            conv_type: pb::ConvType::C2c as i32,
            target: reader.to_owned(),
        }),
        peer_read_seq: read_seq,
        change_version: 0,
    };
    fx.push(Effect::Change {
        app,
        user: peer,
        skip: 0,
        touches: vec![touch],
        push: crate::change_log::ChangePush::PeerRead(push),
    });
}

fn read_u64(store: &dyn Store, key: &[u8]) -> Result<u64, StoreError> {
    Ok(store
        .get(key)?
        .and_then(|v| keys::be_u64(&v, 0))
        .unwrap_or(0))
}

/// The settings of one conversation of `user`.
pub fn load_settings(
    store: &dyn Store,
    app: u64,
    user: &str,
    conv: &[u8],
) -> Result<pb::ConvSettings, StoreError> {
    decode(store.get(&settings_key(app, user, conv))?)
}

/// `Sync`: the change-log answer of [`queries::sync`], with each conversation's settings and
/// C2C peer read position, and the user-level settings.
pub fn sync(
    store: &dyn Store,
    tunables: &Tunables,
    app: u64,
    user: &str,
    req: &pb::SyncReq,
) -> ApiResult<RespKind> {
    let mut kind = queries::sync(store, tunables, app, user, req)?;
    if let RespKind::Sync(resp) = &mut kind {
        for st in &mut resp.conversations {
            let Some(c) = st.conv.clone() else { continue };
            let k = conv_key(user, &c)?;
            st.settings = Some(load_settings(store, app, user, &k)?);
            leave_out_withheld(store, app, user, &k, st)?;
            if c.conv_type() == pb::ConvType::C2c && c.target != user {
                st.peer_read_seq = read_u64(
                    store,
                    &Key::new(tag::READ, app).s(c.target.as_bytes()).s(&k).done(),
                )?;
            }
        }
        resp.user_settings = Some(decode(store.get(&user_settings_key(app, user))?)?);
    }
    Ok(kind)
}

/// `PullMessages`: [`queries::pull`] without the messages this user deleted with the
/// conversation (`cleared_seq`).
pub fn pull(
    store: &dyn Store,
    tunables: &Tunables,
    app: u64,
    user: &str,
    req: &pb::PullMessagesReq,
) -> ApiResult<RespKind> {
    let mut kind = queries::pull(store, tunables, app, user, req)?;
    if let (RespKind::PullMessages(resp), Some(c)) = (&mut kind, &req.conv) {
        let k = conv_key(user, c)?;
        let cleared = load_settings(store, app, user, &k)?.cleared_seq;
        if cleared > 0 {
            resp.messages.retain(|m| m.seq > cleared);
            resp.min_seq = resp.min_seq.max(cleared + 1);
        }
        let gaps = load_gaps(store, app, user, &k)?;
        if !gaps.0.is_empty() {
            resp.messages.retain(|m| !gaps.hides(m, user));
        }
    }
    Ok(kind)
}

/// Corrects a sync entry for the messages `not_receive` withholds from `user`: they neither
/// count as unread nor stand as the last message.
fn leave_out_withheld(
    store: &dyn Store,
    app: u64,
    user: &str,
    conv: &[u8],
    st: &mut pb::ConvState,
) -> Result<(), StoreError> {
    let gaps = load_gaps(store, app, user, conv)?;
    if gaps.0.is_empty() || st.min_seq > st.max_seq {
        return Ok(());
    }
    let scan = |from: u64, to: u64, limit: usize, reverse: bool| {
        let start = Key::new(tag::MSG, app).s(conv).n(from).done();
        let end = Key::new(tag::MSG, app)
            .s(conv)
            .n(to.saturating_add(1))
            .done();
        store.scan(&start, &end, limit, reverse).map(|rows| {
            rows.into_iter()
                .filter_map(|(_, v)| pb::Message::decode(&v[..]).ok())
                .collect::<Vec<_>>()
        })
    };
    let visible = |m: &pb::Message| {
        m.target_user_list.is_empty()
            || m.sender == user
            || m.target_user_list.iter().any(|u| u == user)
    };
    // Unread: the withheld messages above the read position that would have counted.
    let from = (st.read_seq + 1)
        .max(st.min_seq)
        .max(st.max_seq.saturating_sub(queries::UNREAD_SCAN_CAP - 1));
    let mut withheld = 0u32;
    for &(lo, hi) in &gaps.0 {
        let (lo, hi) = ((lo + 1).max(from), hi.min(st.max_seq));
        if lo > hi {
            continue;
        }
        withheld += scan(lo, hi, usize::MAX, false)?
            .iter()
            .filter(|m| {
                visible(m) && gaps.hides(m, user) && unread::counts_as_unread(m, user, st.read_seq)
            })
            .count() as u32;
    }
    st.unread_count = st.unread_count.saturating_sub(withheld);
    // Last message: the newest one the user is served.
    if let Some(last) = &st.last_message
        && gaps.hides(last, user)
    {
        let hidden = crate::lifecycle::Hidden::load(store, app, user, conv)?;
        let below = last.seq.saturating_sub(1);
        st.last_message = scan(st.min_seq, below, LAST_MESSAGE_SCAN, true)?
            .into_iter()
            .find(|m| {
                visible(m)
                    && !m.exclude_from_last_message
                    && !gaps.hides(m, user)
                    && !hidden.hides(m.seq).unwrap_or(false)
            });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::update_conv_req::Change;

    #[test]
    fn recv_gaps_withhold_others_messages_in_their_spans_only() {
        let mut g = RecvGaps::default();
        g.close(3, 3); // empty span: nothing recorded
        g.close(3, 6);
        g.0.push((9, u64::MAX));
        assert_eq!(RecvGaps::decode(&g.encode()), g);
        let covered: Vec<u64> = (1..=12).filter(|&s| g.covers(s)).collect();
        assert_eq!(covered, vec![4, 5, 6, 10, 11, 12]);
        let msg = |seq, sender: &str, tips: bool| pb::Message {
            seq,
            sender: sender.into(),
            elems: if tips {
                vec![pb::Elem {
                    content: Some(pb::elem::Content::GroupTips(pb::GroupTipsElem::default())),
                }]
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        assert!(g.hides(&msg(5, "bob", false), "ann"));
        assert!(!g.hides(&msg(5, "ann", false), "ann"));
        assert!(!g.hides(&msg(5, "bob", true), "ann"));
        assert!(!g.hides(&msg(7, "bob", false), "ann"));
        assert_eq!(RecvGaps::decode(&[0; 20]).0, vec![(0, 0)]);
    }

    fn folder(op: pb::FolderOp, name: &str, new_name: &str) -> pb::FolderChange {
        pb::FolderChange {
            op: op as i32,
            name: name.into(),
            new_name: new_name.into(),
        }
    }

    #[test]
    fn folders_follow_the_seed_rules() {
        let mut f = Vec::new();
        let ids = vec!["c2c_a".to_owned(), "c2c_a".to_owned(), "group_g".to_owned()];
        apply_folder_change(&mut f, &folder(pb::FolderOp::Create, "work", ""), &ids).unwrap();
        assert_eq!(f[0].conversation_ids, vec!["c2c_a", "group_g"]);
        let again = apply_folder_change(&mut f, &folder(pb::FolderOp::Create, "work", ""), &[]);
        assert_eq!(again.unwrap_err().code, ERR_CONV_INVALID_PARAMS);
        let long = "x".repeat(33);
        let e = apply_folder_change(&mut f, &folder(pb::FolderOp::Create, &long, ""), &[]);
        assert_eq!(e.unwrap_err().code, ERR_CONV_FOLDER_NAME_TOO_LONG);
        let e = apply_folder_change(&mut f, &folder(pb::FolderOp::Delete, "nope", ""), &[]);
        assert_eq!(e.unwrap_err().code, ERR_CONV_FOLDER_NOT_FOUND);
        apply_folder_change(&mut f, &folder(pb::FolderOp::Rename, "work", "job"), &[]).unwrap();
        apply_folder_change(
            &mut f,
            &folder(pb::FolderOp::Remove, "job", ""),
            &["c2c_a".to_owned()],
        )
        .unwrap();
        apply_folder_change(
            &mut f,
            &folder(pb::FolderOp::Add, "job", ""),
            &["c2c_b".to_owned(), "group_g".to_owned()],
        )
        .unwrap();
        assert_eq!(f[0].name, "job");
        assert_eq!(f[0].conversation_ids, vec!["group_g", "c2c_b"]);
        for i in 1..MAX_FOLDERS {
            apply_folder_change(
                &mut f,
                &folder(pb::FolderOp::Create, &format!("f{i}"), ""),
                &[],
            )
            .unwrap();
        }
        let e = apply_folder_change(&mut f, &folder(pb::FolderOp::Create, "one more", ""), &[]);
        assert_eq!(e.unwrap_err().code, ERR_CONV_FOLDER_LIMIT);
        apply_folder_change(&mut f, &folder(pb::FolderOp::Delete, "job", ""), &[]).unwrap();
        assert_eq!(f.len(), MAX_FOLDERS - 1);
    }

    #[test]
    fn hide_and_delete_record_the_head_seq() {
        let mut s = pb::ConvSettings::default();
        let hide = Change::Mark(pb::MarkChange {
            mark: MARK_HIDE | 1,
            enable: true,
        });
        assert!(!apply_conv_change(&mut s, &hide, 7).unwrap());
        assert_eq!((s.marks, s.hide_seq), (9, 7));
        let unstar = Change::Mark(pb::MarkChange {
            mark: 1,
            enable: false,
        });
        apply_conv_change(&mut s, &unstar, 9).unwrap();
        assert_eq!((s.marks, s.hide_seq), (8, 7));
        s.pinned = true;
        let del = Change::Delete(pb::DeleteConvChange {
            clear_message: true,
        });
        assert!(apply_conv_change(&mut s, &del, 12).unwrap());
        assert_eq!(
            (s.deleted, s.deleted_seq, s.cleared_seq, s.pinned),
            (true, 12, 12, false)
        );
        assert_eq!(
            apply_conv_change(&mut s, &Change::RecvOpt(4), 0)
                .unwrap_err()
                .code,
            ERR_CONV_INVALID_PARAMS
        );
        assert_eq!(
            apply_conv_change(&mut s, &Change::CustomData(vec![0; 257]), 0)
                .unwrap_err()
                .code,
            ERR_CONV_INVALID_PARAMS
        );
    }
}
