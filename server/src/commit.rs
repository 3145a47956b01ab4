//! The commit pipeline: the single writer of the store, with group commit.
//!
//! Every mutation (send, mark read, registration, group changes, pruning) is a [`Command`] sent to
//! the staging thread. It takes every command waiting (up to [`MAX_BATCH`]), stages their writes
//! in one [`Txn`] that reads through the batches still in flight (later commands see earlier
//! ones), and hands the batch to the applying thread, which appends it to the write-ahead log
//! with **one `fdatasync`** ([`crate::wal`]), answers the requests and sends the pushes in
//! command order, and then applies the batch to the store (hidden from readers by the read barrier
//! until it is all there). So:
//! - a seq is assigned by a single thread (contiguous per conversation, no locks) and acked only
//!   after it is durable;
//! - one `fdatasync` covers a whole batch, and staging the next batch overlaps it;
//! - pushes leave in seq order per conversation, because one thread emits them in order;
//! - no ack or push waits for the store's apply. A client that reads right after an ack or a
//!   push still sees the write: the batch is announced to the read barrier
//!   ([`crate::barrier`]) before its first answer leaves, and every read first waits until the
//!   store has applied every batch announced before it arrived. The staging of later batches
//!   reads through this one's overlay until the store has it (`applied`). A push whose content
//!   is read from the store (a read position's unread count) leaves after the apply, and so do
//!   the pushes after it in the batch, to keep their order.
//!
//! If logging a batch fails, every command of the batch that wrote is answered 90000 and its
//! pushes are dropped, and every later mutation is refused (fail-stop), because later batches
//! were staged on top of the failed one. If applying an answered batch to the store fails, its
//! answers were true (it is durable in the log, which a restart replays, and no checkpoint is
//! asked for past it), but the store misses it: every later mutation is refused the same way,
//! and every read that would need the batch fails ([`crate::barrier::Barrier::fail`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use bytes::Bytes;
use chime_proto::pb::{self, response::Kind as RespKind};
use chime_proto::{codes, ids};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};

use crate::barrier::Barrier;
use crate::config::Tunables;
use crate::error::{ApiError, ApiResult};
use crate::keys::{self, Key, tag};
use crate::queries;
use crate::registry::{ConnTx, Registry, message_push_frame, push_frame};
use crate::store::Store;
use crate::txn::{Staged, Txn};
use crate::wal::Wal;

/// Most commands in one group commit.
pub const MAX_BATCH: usize = 4096;

/// Batches of at most this many commands write their answers and pushes to idle connections
/// from the applying thread ([`crate::outbound::defer`]); larger ones through the connections'
/// writer tasks.
const DIRECT_BATCH: usize = 32;

/// Longest client message id accepted.
pub const MAX_MSG_ID_BYTES: usize = 128;

/// Where the answer to a command goes.
#[derive(Debug)]
pub enum Reply {
    /// A response frame with request `id` on connection `conn`.
    Conn {
        /// The requesting connection.
        conn: ConnTx,
        /// The request id.
        id: u64,
    },
    /// A channel (internal callers).
    Once(oneshot::Sender<ApiResult<RespKind>>),
    /// Nobody waits.
    None,
}

impl Reply {
    fn skip_conn(&self) -> u64 {
        match self {
            Reply::Conn { conn, .. } => conn.conn_id,
            _ => 0,
        }
    }

    fn send(self, result: ApiResult<RespKind>) {
        match self {
            Reply::Conn { conn, id } => {
                conn.send(response_frame(id, result));
            }
            Reply::Once(tx) => {
                let _ = tx.send(result);
            }
            Reply::None => {}
        }
    }
}

/// Encodes a response frame.
pub fn response_frame(id: u64, result: ApiResult<RespKind>) -> Bytes {
    let response = match result {
        Ok(kind) => pb::Response {
            code: 0,
            desc: String::new(),
            kind: Some(kind),
        },
        Err(e) => pb::Response {
            code: e.code,
            desc: e.desc,
            kind: None,
        },
    };
    let frame = pb::Frame {
        id,
        body: Some(pb::frame::Body::Response(response)),
    };
    Bytes::from(frame.encode_to_vec())
}

/// What a command asks for.
#[derive(Debug)]
pub enum Op {
    /// Create the account if it does not exist.
    Register,
    /// Send a message.
    Send(Box<pb::Message>),
    /// Move the read position.
    MarkRead(pb::MarkReadReq),
    /// Create a group.
    CreateGroup(Box<pb::CreateGroupReq>),
    /// Join a group.
    JoinGroup(pb::JoinGroupReq),
    /// Quit a group.
    QuitGroup(pb::QuitGroupReq),
    /// Dismiss a group.
    DismissGroup(pb::DismissGroupReq),
    /// Delete these message keys (retention pruning).
    Prune(Vec<Vec<u8>>),
    /// A message lifecycle write (revoke, modify, delete, clear): [`crate::lifecycle`].
    Lifecycle(crate::lifecycle::LifecycleOp),
    /// A reaction or extension write: [`crate::annotations`].
    Annotation(crate::annotations::AnnotationOp),
    /// Pin or unpin a group message: [`crate::pins`].
    PinGroupMessage(pb::PinGroupMessageReq),
    /// A group management write ([`crate::group_admin`], [`crate::group_apply`],
    /// [`crate::group_kv`]).
    Group(Box<crate::group_admin::GroupOp>),
    /// A users-and-relationships write ([`crate::relations`]).
    Relation(Box<pb::RelationReq>),
    /// Change the user's conversation settings ([`crate::conversations`]).
    UpdateConv(pb::UpdateConvReq),
    /// Message read receipts ([`crate::receipts`]).
    SendReceipts(pb::SendReceiptsReq),
    /// A signaling write ([`crate::signaling`]).
    Signaling(crate::signaling::SignalOp),
    /// A community write: topics, permission groups ([`crate::community`]).
    Community(Box<pb::CommunityReq>),
    /// A file-store write ([`crate::files`]).
    Files(crate::files::FileOp),
    /// The user has been offline past the grace: leave their AVChatRooms ([`crate::groups`]).
    LeaveLiveRooms,
    /// Store imported history messages (REST `importmsg` / `import_group_msg`):
    /// [`crate::http::admin::import`].
    Import(Box<crate::http::admin::import::ImportOp>),
    /// An offline push device or dead-letter write ([`crate::push::devices`]).
    Push(crate::push::PushOp),
    /// Index the messages stored since the last flush ([`crate::search_index::flush`]); whether
    /// more is waiting goes to the sender.
    SearchFlush(oneshot::Sender<bool>),
}

/// One mutation request.
#[derive(Debug)]
pub struct Command {
    /// The app.
    pub app: u64,
    /// The acting user (the sender, the reader, the group operator).
    pub user: String,
    /// The operation.
    pub op: Op,
    /// Where the answer goes.
    pub reply: Reply,
}

/// Messages to the commit thread.
#[derive(Debug)]
pub enum Msg {
    /// A command.
    Cmd(Command),
    /// Finish what is queued, flush and stop.
    Shutdown,
}

/// A push decided while staging, sent after the batch is durable.
pub(crate) enum Effect {
    /// `frame` to every session of `(app, user)` except connection `skip`.
    Push {
        app: u64,
        user: String,
        frame: Bytes,
        skip: u64,
    },
    /// `frame` to every online member of `group` except connection `skip` (and, unless `all`,
    /// except the members who turned the group's messages off): one effect for a whole group,
    /// resolved against the online sessions after the commit ([`Registry::push_members`]), so
    /// staging a group message costs the same for 5 members as for 5,000.
    Group {
        app: u64,
        group: Arc<GroupState>,
        frame: Bytes,
        skip: u64,
        all: bool,
    },
    /// A community topic message: as `Group` for the community `group`, except also the
    /// members who turned the topic's messages off (`topic_off`, from
    /// [`crate::community::topic_not_receiving`]).
    Topic {
        app: u64,
        group: Arc<GroupState>,
        topic_off: HashSet<String>,
        frame: Bytes,
        skip: u64,
    },
    /// A read-position push, with the unread count computed after the commit.
    Read {
        app: u64,
        user: String,
        conv: pb::ConvRef,
        conv_key: Vec<u8>,
        read_seq: u64,
        skip: u64,
        /// The user's change version the push carries ([`crate::change_log`]).
        change: crate::change_log::ChangeVersion,
    },
    /// `push` to every session of `(app, user)` except connection `skip`, carrying the change
    /// versions of `touches` (stamped into a [`Effect::Push`] once the batch's change logs moved:
    /// [`crate::change_log::stamp_effect`]).
    Change {
        app: u64,
        user: String,
        skip: u64,
        touches: Vec<crate::change_log::Touch>,
        push: crate::change_log::ChangePush,
    },
    /// A stored message for the offline push queue ([`crate::push`]), handed over once durable.
    OfflinePush {
        app: u64,
        encoded: Vec<u8>,
        at_us: i64,
    },
    /// A notice to the app backend ([`crate::webhooks::notices`]), queued once durable.
    Notice {
        app: u64,
        notice: crate::webhooks::Notice,
    },
}

pub(crate) use crate::groups::GroupState;

/// Token bucket of one group's message rate.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Counters of the commit threads (logged every 1000 batches at debug level, and at stop).
#[derive(Debug, Default)]
struct Stats {
    batches: u64,
    commands: u64,
    writes: u64,
    stage_us: u64,
    apply_us: u64,
    flush_us: u64,
    emit_us: u64,
}

/// The staging thread's state.
pub(crate) struct Core {
    pub store: Arc<dyn Store>,
    /// Who is online (AVChatRoom membership follows it).
    pub registry: Arc<Registry>,
    pub tunables: Arc<Tunables>,
    pub groups: HashMap<(u64, String), Arc<GroupState>>,
    buckets: HashMap<(u64, String), Bucket>,
    stats: Stats,
    /// Batches handed to the applier and not yet applied: (batch number, writes), oldest first.
    inflight: VecDeque<(u64, Arc<Staged>)>,
    /// Number of the last batch the applier has applied (visible in the store).
    applied: Arc<AtomicU64>,
    /// Set by the applier when a batch could not be applied or flushed: from then on every
    /// mutation is refused (fail-stop), since later batches were staged on top of it.
    failed: Arc<AtomicBool>,
    /// The trigrams of the messages stored since the last search index flush.
    search: crate::search_index::Memory,
    /// The changes the current command's answer carries, in the answer's order (stamped with
    /// their versions at the end of the batch: [`crate::change_log::stamp_response`]).
    pub(crate) reply_touches: Vec<crate::change_log::Touch>,
    /// The records every send reads, as of every batch staged ([`crate::read_cache`]).
    cache: crate::read_cache::ReadCache,
    /// The recent senders' idempotency keys ([`crate::idem_filter`]).
    idem: crate::idem_filter::IdemFilter,
}

/// One staged batch on its way to the applier.
struct Pending {
    number: u64,
    staged: Arc<Staged>,
    /// Per command: where the answer goes, the answer, whether it wrote, its pushes.
    answers: Vec<(Reply, ApiResult<RespKind>, bool, Vec<Effect>)>,
}

/// Starts the commit threads (staging and applying); they stop on [`Msg::Shutdown`] or when
/// every sender is gone. The handle joins both; every reader of `store` waits at the returned
/// read barrier ([`crate::barrier::Gated`]).
pub fn spawn(
    store: Arc<dyn Store>,
    wal: Wal,
    registry: Arc<Registry>,
    tunables: Arc<Tunables>,
    webhooks: Option<Arc<crate::webhooks::Webhooks>>,
    push: Option<crate::push::Hook>,
    queue: usize,
) -> std::io::Result<(mpsc::Sender<Msg>, std::thread::JoinHandle<()>, Arc<Barrier>)> {
    let barrier = Arc::new(Barrier::new());
    let (tx, rx) = mpsc::channel(queue);
    let applied = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    // One batch may wait while another is applied: staging overlaps the apply and the fsync.
    let (to_applier, from_stager) = std::sync::mpsc::sync_channel::<Pending>(1);
    let mut wal = wal;
    wal.start_checkpoints(Arc::clone(&store))?;
    let applier = Applier {
        store: Arc::clone(&store),
        wal,
        registry: Arc::clone(&registry),
        webhooks,
        push,
        applied: Arc::clone(&applied),
        failed: Arc::clone(&failed),
        barrier: Arc::clone(&barrier),
        stats: Stats::default(),
    };
    let applier = std::thread::Builder::new()
        .name("chime-apply".into())
        .spawn(move || applier.run(from_stager))?;
    let mut core = Core {
        store,
        registry,
        tunables,
        groups: HashMap::new(),
        buckets: HashMap::new(),
        stats: Stats::default(),
        inflight: VecDeque::new(),
        applied,
        failed,
        search: Default::default(),
        reply_touches: Vec::new(),
        cache: Default::default(),
        idem: Default::default(),
    };
    let handle = std::thread::Builder::new()
        .name("chime-commit".into())
        .spawn(move || {
            core.run(rx, to_applier);
            if applier.join().is_err() {
                tracing::error!("the apply thread panicked");
            }
        })?;
    Ok((tx, handle, barrier))
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn u64_bytes(v: u64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

impl Core {
    fn run(&mut self, mut rx: mpsc::Receiver<Msg>, to_applier: SyncSender<Pending>) {
        let mut stop = false;
        while !stop {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let mut cmds = Vec::new();
            match first {
                Msg::Cmd(c) => cmds.push(c),
                Msg::Shutdown => stop = true,
            }
            while !stop && cmds.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Msg::Cmd(c)) => cmds.push(c),
                    Ok(Msg::Shutdown) => stop = true,
                    Err(_) => break,
                }
            }
            if cmds.is_empty() {
                continue;
            }
            let pending = self.stage_batch(cmds);
            if to_applier.send(pending).is_err() {
                tracing::error!("the apply thread stopped");
                break;
            }
        }
        tracing::info!(stats = ?self.stats, "staging totals");
        let (hits, misses) = self.cache.counts();
        tracing::info!(
            hits,
            misses,
            held = self.cache.len(),
            senders = self.idem.senders(),
            "staging read cache"
        );
    }

    /// Stages one batch over the store and the batches still being applied.
    fn stage_batch(&mut self, cmds: Vec<Command>) -> Pending {
        let t0 = Instant::now();
        self.stats.batches += 1;
        self.stats.commands += cmds.len() as u64;
        let number = self.stats.batches;
        let done = self.applied.load(Ordering::Acquire);
        while self.inflight.front().is_some_and(|(n, _)| *n <= done) {
            self.inflight.pop_front();
        }
        if self.failed.load(Ordering::Acquire) {
            self.groups.clear();
            self.inflight.clear();
            self.search.clear();
            self.cache.clear();
            self.idem.clear();
            let answers = cmds
                .into_iter()
                .map(|c| {
                    let e = ApiError::new(codes::ERR_SVR_INTERNAL, "store failed; restart needed");
                    (c.reply, Err(e), false, Vec::new())
                })
                .collect();
            return Pending {
                number,
                staged: Arc::new(Staged::default()),
                answers,
            };
        }
        let store = Arc::clone(&self.store);
        let layers: Vec<Arc<Staged>> = self.inflight.iter().map(|(_, s)| Arc::clone(s)).collect();
        let mut txn = Txn::new(store.as_ref(), &layers).with_cache(std::mem::take(&mut self.cache));
        let mut answers = Vec::with_capacity(cmds.len());
        let mut reply_touches = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let before = txn.len();
            let mut fx = Vec::new();
            self.reply_touches.clear();
            let r = self.stage(&mut txn, cmd.app, &cmd.user, cmd.op, &cmd.reply, &mut fx);
            let wrote = txn.len() != before;
            answers.push((cmd.reply, r, wrote, fx));
            reply_touches.push(std::mem::take(&mut self.reply_touches));
        }
        let moved = crate::change_log::move_logs(&mut txn);
        let versions = match moved {
            Ok(versions) => versions,
            Err(e) => {
                // A store read failed while moving change logs: refuse the batch's writes.
                tracing::error!("staging failed: {}", e.desc);
                self.groups.clear();
                self.search.clear();
                // The cache holds nothing of this batch (it is absorbed only once staged).
                self.cache = txn.into_parts().1.unwrap_or_default();
                for a in &mut answers {
                    if a.2 {
                        a.1 = Err(ApiError::new(codes::ERR_SVR_INTERNAL, "store read failed"));
                        a.3.clear();
                    }
                }
                return Pending {
                    number,
                    staged: Arc::new(Staged::default()),
                    answers,
                };
            }
        };
        // Every answer and push that carries a change gets the change's version.
        for ((_, result, _, fx), touches) in answers.iter_mut().zip(&reply_touches) {
            if let Ok(kind) = result {
                crate::change_log::stamp_response(kind, touches, &versions);
            }
            if fx
                .iter()
                .any(|e| matches!(e, Effect::Read { .. } | Effect::Change { .. }))
            {
                *fx = std::mem::take(fx)
                    .into_iter()
                    .map(|e| crate::change_log::stamp_effect(e, &versions))
                    .collect();
            }
        }
        self.search.absorb(&mut txn);
        let (staged, cache) = txn.into_parts();
        self.cache = cache.unwrap_or_default();
        let writes = || staged.iter().map(|(k, v)| (k.as_slice(), v));
        self.cache.absorb(writes());
        self.idem.absorb(writes());
        let staged = Arc::new(staged);
        self.stats.writes += staged.len() as u64;
        if !staged.is_empty() {
            self.inflight.push_back((number, Arc::clone(&staged)));
        }
        self.stats.stage_us += t0.elapsed().as_micros() as u64;
        Pending {
            number,
            staged,
            answers,
        }
    }

    fn stage(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        user: &str,
        op: Op,
        reply: &Reply,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let skip = reply.skip_conn();
        match op {
            Op::Register => {
                let key = Key::new(tag::USER, app).s(user.as_bytes()).done();
                if txn.get(&key)?.is_none() {
                    txn.put(key, now_ms().to_be_bytes().to_vec());
                }
                Ok(RespKind::Logout(pb::LogoutResp {}))
            }
            Op::Send(msg) => self.send(txn, app, user, *msg, skip, fx),
            Op::MarkRead(req) => self.mark_read(txn, app, user, req, skip, fx),
            Op::CreateGroup(req) => self.create_group(txn, app, user, *req, skip, fx),
            Op::JoinGroup(req) => self.join_group(txn, app, user, req, skip, fx),
            Op::QuitGroup(req) => self.quit_group(txn, app, user, req, skip, fx),
            Op::DismissGroup(req) => self.dismiss_group(txn, app, user, req, skip, fx),
            Op::Group(op) => self.stage_group_op(txn, app, user, *op, skip, fx),
            Op::UpdateConv(req) => {
                crate::conversations::update(self, txn, app, user, req, skip, fx)
            }
            Op::SendReceipts(req) => crate::receipts::send(self, txn, app, user, req, fx),
            Op::Lifecycle(op) => crate::lifecycle::stage(self, txn, app, user, op, skip, fx),
            Op::Annotation(op) => crate::annotations::stage(self, txn, app, user, op, skip, fx),
            Op::PinGroupMessage(req) => crate::pins::pin(self, txn, app, user, req, skip, fx),
            Op::Relation(req) => {
                crate::relations::stage(txn, self.store.as_ref(), app, user, *req, skip, fx)
            }
            Op::Signaling(op) => crate::signaling::stage(self, txn, app, user, op, fx),
            Op::Community(req) => crate::community::stage(self, txn, app, user, *req, fx),
            Op::Files(op) => crate::files::stage(txn, app, op),
            Op::LeaveLiveRooms => self.leave_live_rooms(txn, app, user, fx),
            Op::Import(op) => crate::http::admin::import::stage(self, txn, app, *op),
            Op::Push(op) => crate::push::devices::stage(txn, app, user, op),
            Op::SearchFlush(more) => {
                let done = crate::search_index::flush(self.store.as_ref(), txn, &mut self.search)?;
                let _ = more.send(done.more);
                Ok(RespKind::Logout(pb::LogoutResp {}))
            }
            Op::Prune(keys) => {
                for k in keys {
                    txn.del(k);
                }
                Ok(RespKind::Logout(pb::LogoutResp {}))
            }
        }
    }

    /// The group's cached state, loaded from the store on first use.
    pub(crate) fn group(
        &mut self,
        txn: &Txn<'_>,
        app: u64,
        group_id: &str,
    ) -> ApiResult<Option<Arc<GroupState>>> {
        let k = (app, group_id.to_owned());
        if let Some(g) = self.groups.get(&k) {
            return Ok(Some(Arc::clone(g)));
        }
        let Some(raw) = txn.get(&Key::new(tag::GROUP, app).s(group_id.as_bytes()).done())? else {
            return Ok(None);
        };
        let info = pb::GroupInfo::decode(&raw[..]).map_err(crate::error::StoreError::from)?;
        let members = queries::load_members(self.store.as_ref(), app, group_id)?;
        let mut g = GroupState::from_members(info, members);
        g.not_receive = crate::conversations::not_receiving(
            self.store.as_ref(),
            app,
            &keys::group_conv(group_id),
        )?;
        let g = Arc::new(g);
        self.groups.insert(k, Arc::clone(&g));
        Ok(Some(g))
    }

    /// Token bucket check: whether a group message of `priority` may pass now.
    fn admit(&mut self, app: u64, group_id: &str, priority: pb::Priority) -> bool {
        let rate = f64::from(self.tunables.group_message_rate.max(1));
        let now = Instant::now();
        let b = self
            .buckets
            .entry((app, group_id.to_owned()))
            .or_insert(Bucket {
                tokens: rate,
                at: now,
            });
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.at = now;
        // Low priority goes first: it needs a half-full bucket. High is always delivered.
        let need = match priority {
            pb::Priority::Low => rate / 2.0,
            pb::Priority::High => 0.0,
            _ => 1.0,
        };
        if b.tokens >= need.max(1.0) || priority == pb::Priority::High {
            b.tokens = (b.tokens - 1.0).max(0.0);
            true
        } else {
            false
        }
    }

    fn send(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        sender: &str,
        mut msg: pb::Message,
        skip: u64,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        if msg.msg_id.is_empty() || msg.msg_id.len() > MAX_MSG_ID_BYTES {
            return Err(ApiError::new(
                codes::ERR_SVR_INVALID_PARAMS,
                "msg_id must be 1..=128 bytes",
            ));
        }
        if chime_proto::limits::message_body_bytes(&msg)
            > chime_proto::limits::MAX_MESSAGE_BODY_BYTES
        {
            return Err(ApiError::new(
                codes::ERR_SVR_MSG_TOO_LARGE,
                "message body over 12 KB",
            ));
        }
        let idem_key = Key::new(tag::IDEM, app)
            .s(sender.as_bytes())
            .s(msg.msg_id.as_bytes())
            .done();
        // The batch's own writes, else the filter's proof that the entry is absent, else a read.
        let known = match txn.get_staged(&idem_key) {
            Some(v) => v.clone(),
            None if self.idem.proves_absent(txn, &idem_key)? => None,
            None => txn.get(&idem_key)?,
        };
        if let Some(v) = known {
            let seq = keys::be_u64(&v, 0).unwrap_or(0);
            let time = keys::be_u64(&v, 8).unwrap_or(0) as i64;
            return Ok(RespKind::SendMessage(pb::SendMessageResp {
                msg_id: msg.msg_id,
                seq,
                server_time_ms: time,
                change_version: 0,
            }));
        }
        // Stamp what the server owns.
        msg.sender = sender.to_owned();
        msg.server_time_ms = now_ms();
        msg.seq = 0;
        msg.version = 0;
        msg.revoked = false;
        msg.revoke_reason.clear();
        msg.revoker.clear();
        msg.nick_name.clear();
        msg.face_url.clear();
        crate::relations::stamp_sender(txn, app, &mut msg)?;
        match msg.conv_type() {
            pb::ConvType::C2c => self.send_c2c(txn, app, msg, idem_key, skip, fx),
            pb::ConvType::Group => self.send_group(txn, app, msg, idem_key, skip, fx),
            pb::ConvType::Unspecified => Err(ApiError::new(
                codes::ERR_SVR_INVALID_PARAMS,
                "conv_type must be C2C or group",
            )),
        }
    }

    fn ack(msg: &pb::Message) -> RespKind {
        RespKind::SendMessage(pb::SendMessageResp {
            msg_id: msg.msg_id.clone(),
            seq: msg.seq,
            server_time_ms: msg.server_time_ms,
            change_version: 0,
        })
    }

    /// Stores `msg` at the next seq of `conv` with its idempotency entry; returns the encoded
    /// message (encoded once, for the store and every push).
    pub(crate) fn append(
        txn: &mut Txn<'_>,
        app: u64,
        conv: &[u8],
        msg: &mut pb::Message,
        idem_key: Vec<u8>,
    ) -> ApiResult<Vec<u8>> {
        let head_key = Key::new(tag::HEAD, app).s(conv).done();
        let seq = txn.get_u64(&head_key)? + 1;
        msg.seq = seq;
        txn.put(head_key, u64_bytes(seq));
        let encoded = msg.encode_to_vec();
        txn.put(
            Key::new(tag::MSG, app).s(conv).n(seq).done(),
            encoded.clone(),
        );
        crate::search_index::stage_new(txn, app, conv, msg);
        let mut idem = Vec::with_capacity(16 + conv.len());
        idem.extend_from_slice(&seq.to_be_bytes());
        idem.extend_from_slice(&msg.server_time_ms.to_be_bytes());
        idem.extend_from_slice(conv);
        txn.put(idem_key, idem);
        Ok(encoded)
    }

    /// Hands a stored message to the offline push queue once durable (when `[push]` is set).
    fn offline_push(&self, app: u64, msg: &pb::Message, encoded: &[u8], fx: &mut Vec<Effect>) {
        if self.tunables.push.is_some() && !msg.online_user_only {
            fx.push(Effect::OfflinePush {
                app,
                encoded: encoded.to_vec(),
                at_us: crate::push::now_us(),
            });
        }
    }

    fn message_push(encoded: &[u8], conv_type: pb::ConvType, target: &str) -> Bytes {
        message_push_frame(encoded, conv_type, target)
    }

    fn send_c2c(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        mut msg: pb::Message,
        idem_key: Vec<u8>,
        skip: u64,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        if !ids::is_valid_user_id(&msg.receiver) {
            return Err(ApiError::new(
                codes::ERR_INVALID_USER_ID,
                "invalid receiver",
            ));
        }
        crate::relations::check_c2c(txn, app, &msg.sender, &msg.receiver)?;
        msg.group_id.clear();
        msg.target_user_list.clear();
        let sender = msg.sender.clone();
        let receiver = msg.receiver.clone();
        let conv = keys::c2c_conv(&sender, &receiver);
        // A receiver who turned this conversation off gets nothing: no push, no change-log
        // entry, and their pulls leave the message out (`conversations::pull`).
        let delivered =
            receiver == sender || crate::conversations::receives(txn, app, &receiver, &conv)?;
        crate::files::grants::grant_message(self.store.as_ref(), txn, app, &conv, &msg)?;
        // Each side's change (none for an online-only message): its version travels with the
        // sender's ack and the pushes ([`crate::change_log`]).
        let (encoded, sender_touch, receiver_touch) = if msg.online_user_only {
            (msg.encode_to_vec(), None, None)
        } else {
            let encoded = Self::append(txn, app, &conv, &mut msg, idem_key)?;
            let s = txn.touch(app, &sender, &conv);
            let r = (receiver != sender && delivered).then(|| txn.touch(app, &receiver, &conv));
            (encoded, Some(s), r)
        };
        self.offline_push(app, &msg, &encoded, fx);
        let encoded = Bytes::from(encoded);
        let mut push_to = |user: String, target: &str, touch: Option<crate::change_log::Touch>| {
            fx.push(Effect::Change {
                app,
                user,
                skip,
                touches: touch.into_iter().collect(),
                push: crate::change_log::ChangePush::Message {
                    encoded: encoded.clone(),
                    conv_type: pb::ConvType::C2c,
                    target: target.to_owned(),
                },
            });
        };
        if receiver != sender && delivered {
            push_to(receiver.clone(), &sender, receiver_touch);
        }
        // The sender's other devices see the conversation with the receiver.
        push_to(sender, &receiver, sender_touch);
        self.reply_touches.extend(sender_touch);
        Ok(Self::ack(&msg))
    }

    fn send_group(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        mut msg: pb::Message,
        idem_key: Vec<u8>,
        skip: u64,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        if !ids::is_valid_group_id(&msg.group_id) {
            return Err(ApiError::new(
                codes::ERR_INVALID_GROUP_ID,
                "invalid group id",
            ));
        }
        if msg.target_user_list.len() > chime_proto::limits::MAX_TARGETED_RECEIVERS {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                "a targeted group message has at most 50 receivers",
            ));
        }
        msg.receiver.clear();
        let group_id = msg.group_id.clone();
        // A community topic: its community's members and mutes apply (`community`).
        let members_of = crate::community::check_send(self, txn, app, &msg)?;
        let Some(group) = self.group(txn, app, members_of.as_deref().unwrap_or(&group_id))? else {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_NOT_FOUND,
                "no such group",
            ));
        };
        let sender = msg.sender.clone();
        if !group.members.contains_key(&sender) && sender != self.tunables.admin_identifier {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "not a member of the group",
            ));
        }
        crate::groups::check_speak(&group, &sender, msg.server_time_ms)?;
        if !self.admit(app, &group_id, msg.priority()) {
            // Dropped by the rate limit: the sender is still told success (seq 0).
            return Ok(Self::ack(&msg));
        }
        crate::lifecycle::check_targeted(&msg, &group.info.group_type)?;
        if group.info.group_type == "AVChatRoom" {
            msg.online_user_only = true;
        }
        let group_conv = keys::group_conv(&group_id);
        crate::files::grants::grant_message(self.store.as_ref(), txn, app, &group_conv, &msg)?;
        let encoded = if msg.online_user_only {
            msg.encode_to_vec()
        } else {
            Self::append(txn, app, &group_conv, &mut msg, idem_key)?
        };
        self.offline_push(app, &msg, &encoded, fx);
        let frame = Self::message_push(&encoded, pb::ConvType::Group, &group_id);
        // A topic's own receive option counts besides the community's.
        let topic_off = match members_of {
            Some(_) => crate::community::topic_not_receiving(self.store.as_ref(), app, &group_id)?,
            None => HashSet::new(),
        };
        if msg.target_user_list.is_empty() {
            // Read diffusion: the one append above is all that is stored; the online members
            // get the frame after the commit, resolved in one pass by the registry.
            if group.not_receive.contains(&sender) || topic_off.contains(&sender) {
                fx.push(Effect::Push {
                    app,
                    user: sender.clone(),
                    frame: frame.clone(),
                    skip,
                });
            }
            if members_of.is_some() {
                fx.push(Effect::Topic {
                    app,
                    group: Arc::clone(&group),
                    topic_off,
                    frame,
                    skip,
                });
            } else {
                fx.push(Effect::Group {
                    app,
                    group: Arc::clone(&group),
                    frame,
                    skip,
                    all: false,
                });
            }
        } else {
            let mut to: Vec<&String> = msg.target_user_list.iter().collect();
            to.push(&sender);
            to.sort();
            to.dedup();
            let receives = |u: &&String| *u == &sender || !group.not_receive.contains(*u);
            for user in to
                .into_iter()
                .filter(|u| group.members.contains_key(*u))
                .filter(receives)
            {
                fx.push(Effect::Push {
                    app,
                    user: user.clone(),
                    frame: frame.clone(),
                    skip,
                });
            }
        }
        Ok(Self::ack(&msg))
    }

    fn mark_read(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        user: &str,
        req: pb::MarkReadReq,
        skip: u64,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let conv_ref = req
            .conv
            .ok_or_else(|| ApiError::new(codes::ERR_SVR_INVALID_PARAMS, "conv is required"))?;
        let conv = match conv_ref.conv_type() {
            pb::ConvType::C2c => {
                if !ids::is_valid_user_id(&conv_ref.target) {
                    return Err(ApiError::new(codes::ERR_INVALID_USER_ID, "invalid user id"));
                }
                keys::c2c_conv(user, &conv_ref.target)
            }
            pb::ConvType::Group => {
                if !ids::is_valid_group_id(&conv_ref.target) {
                    return Err(ApiError::new(
                        codes::ERR_INVALID_GROUP_ID,
                        "invalid group id",
                    ));
                }
                let members_of = crate::community::membership_group(txn, app, &conv_ref.target)?;
                match self.group(txn, app, &members_of)? {
                    None => {
                        return Err(ApiError::new(
                            codes::ERR_SVR_GROUP_NOT_FOUND,
                            "no such group",
                        ));
                    }
                    Some(g) if !g.members.contains_key(user) => {
                        return Err(ApiError::new(
                            codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                            "not a member of the group",
                        ));
                    }
                    Some(_) => keys::group_conv(&conv_ref.target),
                }
            }
            pb::ConvType::Unspecified => {
                return Err(ApiError::new(
                    codes::ERR_SVR_INVALID_PARAMS,
                    "conv_type is required",
                ));
            }
        };
        let head = txn.get_u64(&Key::new(tag::HEAD, app).s(&conv).done())?;
        let wanted = if req.read_seq == 0 {
            head
        } else {
            req.read_seq.min(head)
        };
        let read_key = Key::new(tag::READ, app).s(user.as_bytes()).s(&conv).done();
        let old = txn.get_u64(&read_key)?;
        if wanted <= old {
            return Ok(RespKind::MarkRead(pb::MarkReadResp {
                read_seq: old,
                change_version: 0,
            }));
        }
        txn.put(read_key, u64_bytes(wanted));
        let touch = txn.touch(app, user, &conv);
        self.reply_touches.push(touch);
        crate::conversations::peer_read_effects(txn, app, user, &conv_ref, &conv, wanted, fx);
        fx.push(Effect::Read {
            app,
            user: user.to_owned(),
            conv: conv_ref,
            conv_key: conv,
            read_seq: wanted,
            skip,
            change: crate::change_log::ChangeVersion::Touched(touch),
        });
        Ok(RespKind::MarkRead(pb::MarkReadResp {
            read_seq: wanted,
            change_version: 0,
        }))
    }
}

/// The applying thread: logs each staged batch (one fsync), answers and pushes in command
/// order, then applies it to the store (behind the read barrier).
struct Applier {
    store: Arc<dyn Store>,
    wal: Wal,
    registry: Arc<Registry>,
    /// The app backend's callbacks, told about effects with a notice.
    webhooks: Option<Arc<crate::webhooks::Webhooks>>,
    /// The offline push queue, when `[push]` is configured.
    push: Option<crate::push::Hook>,
    applied: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    /// Told when a batch is answered and when the store has it (the readers wait on it).
    barrier: Arc<Barrier>,
    stats: Stats,
}

impl Applier {
    fn run(mut self, rx: std::sync::mpsc::Receiver<Pending>) {
        for pending in rx {
            self.apply(pending);
        }
        if !self.failed.load(Ordering::Acquire) {
            self.checkpoint();
        }
        tracing::info!(stats = ?self.stats, "apply totals");
        tracing::info!("commit task stopped");
    }

    /// Flushes the store and marks the whole write-ahead log checkpointed (at stop).
    fn checkpoint(&mut self) {
        let result = self.store.flush().and_then(|()| {
            self.wal
                .reset()
                .map_err(|e| crate::error::StoreError::Corrupt(format!("write-ahead log: {e}")))
        });
        // The log still holds everything: a restart recovers.
        if let Err(e) = result {
            tracing::error!("checkpoint failed: {e}");
        }
    }

    /// One batch: durable (the log's `fdatasync`), then answered and pushed, then visible (the
    /// store), then the pushes that read the store ([`Applier::reads_store`]). See the module
    /// doc for why answering before the store applies is safe.
    fn apply(&mut self, pending: Pending) {
        let t0 = Instant::now();
        self.stats.batches += 1;
        if self.stats.batches.is_multiple_of(1000) {
            tracing::debug!(stats = ?self.stats, "apply");
        }
        let number = pending.number;
        let mut ops: Vec<_> = pending
            .staged
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        // In key order: neighbouring inserts land in the same tree nodes.
        ops.sort_unstable_by(|a, b| a.0.cmp(b.0));
        // Durable first (the log), visible after (the store): the store is always a prefix of
        // the log, so replaying the log after a crash is exact.
        let logged = if self.failed.load(Ordering::Acquire) {
            // Staged on top of a batch that failed: never log or apply it.
            Err(crate::error::StoreError::Corrupt(
                "an earlier batch failed".into(),
            ))
        } else if ops.is_empty() {
            Ok(None)
        } else {
            self.wal
                .append(&ops)
                .map(Some)
                .map_err(|e| crate::error::StoreError::Corrupt(format!("write-ahead log: {e}")))
        };
        let t1 = Instant::now();
        self.stats.flush_us += (t1 - t0).as_micros() as u64;
        match &logged {
            Err(e) => {
                tracing::error!("group commit failed, refusing further writes: {e}");
                self.failed.store(true, Ordering::Release);
                // Nothing of it is anywhere: the stager may drop its overlay.
                self.applied.store(number, Ordering::Release);
            }
            // Reads arriving from now on wait until the store has this batch.
            Ok(Some(_)) => self.barrier.answering(number),
            Ok(None) => self.applied.store(number, Ordering::Release),
        }
        // Every answer of the batch first, then every push in command order: no sender's ack
        // waits for the fan-out of a message staged before it (a live room's 2,000 pushes), and
        // pushes keep their per-conversation order.
        // A small batch (latency counts) is written to the connections from this thread at the
        // end of the scope, each in one write when its writer task is idle
        // (`crate::outbound::defer`): no wake-up of another thread between the durable write
        // and the socket. A large one (throughput counts) leaves the writes to the connections'
        // writer tasks, which run beside this thread.
        let direct = pending.answers.len() <= DIRECT_BATCH;
        let writes = direct.then(crate::outbound::defer);
        let mut effects = Vec::with_capacity(pending.answers.len());
        for (reply, result, wrote, fx) in pending.answers {
            if logged.is_err() && wrote {
                reply.send(Err(ApiError::new(
                    codes::ERR_SVR_INTERNAL,
                    "store write failed",
                )));
                continue;
            }
            reply.send(result);
            effects.extend(fx);
        }
        // The pushes up to the first one that reads the store leave now; the rest (in order)
        // once the store has the batch.
        let mut effects = effects.into_iter().peekable();
        while let Some(e) = effects.next_if(|e| !Self::reads_store(e)) {
            self.emit(e);
        }
        drop(writes);
        let t2 = Instant::now();
        self.stats.emit_us += (t2 - t1).as_micros() as u64;
        let Ok(Some(lsn)) = logged else {
            let _writes = direct.then(crate::outbound::defer);
            effects.for_each(|e| self.emit(e));
            self.stats.emit_us += t2.elapsed().as_micros() as u64;
            return;
        };
        let applied = self.store.apply(&ops);
        let t3 = Instant::now();
        self.stats.apply_us += (t3 - t2).as_micros() as u64;
        if let Err(e) = applied {
            // Answered and durable, but not in the store: refuse every later write (failed is
            // set before the stager may drop the overlay) and every read that needs this batch;
            // a restart replays it from the log (never checkpointed past it: no checkpoint is
            // asked for from now on).
            tracing::error!("applying an acknowledged batch failed, refusing further writes: {e}");
            self.failed.store(true, Ordering::Release);
            self.applied.store(number, Ordering::Release);
            self.barrier.fail();
            return;
        }
        // Visible in the store now: the stager may stop reading this batch's overlay.
        self.applied.store(number, Ordering::Release);
        self.barrier.applied(number);
        let writes = direct.then(crate::outbound::defer);
        effects.for_each(|e| self.emit(e));
        drop(writes);
        self.stats.emit_us += t3.elapsed().as_micros() as u64;
        // Off every ack's path, the log's housekeeping: a background checkpoint now and then
        // (covering the applied records only), zeros ahead of the write position.
        self.wal.request_checkpoint(lsn);
        if let Err(e) = self.wal.prepare_ahead() {
            tracing::warn!("write-ahead log: preparing the next blocks: {e}");
        }
    }

    /// Whether emitting `effect` reads the store (and so must wait until the batch is applied).
    fn reads_store(effect: &Effect) -> bool {
        matches!(effect, Effect::Read { .. })
    }

    fn emit(&self, effect: Effect) {
        match effect {
            Effect::Push {
                app,
                user,
                frame,
                skip,
            } => self.registry.push(app, &user, &frame, skip),
            Effect::Group {
                app,
                group,
                frame,
                skip,
                all,
            } => {
                let none = std::collections::HashSet::new();
                let except = if all { &none } else { &group.not_receive };
                self.registry
                    .push_members(app, &group.members, except, &frame, skip);
            }
            Effect::Topic {
                app,
                group,
                mut topic_off,
                frame,
                skip,
            } => {
                topic_off.extend(group.not_receive.iter().cloned());
                self.registry
                    .push_members(app, &group.members, &topic_off, &frame, skip);
            }
            Effect::Read {
                app,
                user,
                conv,
                conv_key,
                read_seq,
                skip,
                change,
            } => {
                let (unread, max_seq) =
                    queries::unread_at(self.store.as_ref(), app, &user, &conv_key, read_seq)
                        .unwrap_or((0, 0));
                let frame = push_frame(pb::push::Kind::Read(pb::ReadPush {
                    conv: Some(conv),
                    read_seq,
                    unread_count: unread,
                    max_seq,
                    change_version: change.get(),
                }));
                self.registry.push(app, &user, &frame, skip);
            }
            // Stamped into a push while staging; should one come through unstamped, it goes
            // without versions (the devices' next sync restates the change).
            Effect::Change {
                app,
                user,
                skip,
                push,
                ..
            } => self.registry.push(app, &user, &push.frame(&[]), skip),
            Effect::Notice { app, notice } => {
                if let Some(hooks) = &self.webhooks {
                    hooks.notify(app, notice);
                }
            }
            Effect::OfflinePush {
                app,
                encoded,
                at_us,
            } => {
                if let Some(push) = &self.push {
                    push.message(app, encoded, at_us);
                }
            }
        }
    }
}
