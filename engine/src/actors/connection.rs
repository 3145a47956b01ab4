//! ConnectionActor: the transport, the login handshake, heartbeat, reconnect with backoff,
//! automatic re-login, request/response correlation by id with timeouts, and routing of server
//! pushes to the actors that own what they change. Timing decisions come from
//! [`crate::session`]; the socket pump is [`crate::transport`], over WebSocket or a transport
//! plugin chosen by [`transport::select`], with the fallback to WebSocket decided by
//! [`transport::falls_back`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chime_proto::pb::{self, frame::Body, push, request};
use chime_proto::{codes, frame, ids};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::{Account, CloseAccount, Offline, Online, OpenAccount, Peers, Shared, now_ms};
use crate::session::{Backoff, Heartbeat, LoginStatus};
use crate::store::SledStore;
use crate::transport::{self, Carrier, Dial, FromTransport, Selection, TransportEvent};
use crate::{ApiError, Result};

/// Default heartbeat interval when the server does not say.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// How often pending requests and the heartbeat are checked.
const TICK: Duration = Duration::from_millis(250);

struct Link {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    heartbeat: Heartbeat,
    max_frame: usize,
}

/// The session's login status as the ConnectionActor (its only writer) last set it, readable
/// from any thread: the dispatch table's login check reads it instead of asking the actor, which
/// would cost every call a round trip through the engine thread before its real work.
#[derive(Clone, Default)]
pub struct StatusCell(Arc<AtomicU8>);

impl StatusCell {
    /// The current status.
    pub fn get(&self) -> LoginStatus {
        match self.0.load(Ordering::Acquire) {
            1 => LoginStatus::Logining,
            2 => LoginStatus::Logined,
            _ => LoginStatus::Logout,
        }
    }

    fn set(&self, status: LoginStatus) {
        let v = match status {
            LoginStatus::Logout => 0,
            LoginStatus::Logining => 1,
            LoginStatus::Logined => 2,
        };
        self.0.store(v, Ordering::Release);
    }
}

struct PendingReq {
    tx: Option<oneshot::Sender<Result<pb::Response>>>,
    deadline: Instant,
}

/// Owns the connection and the session.
pub struct ConnectionActor {
    shared: Shared,
    peers: Option<Peers>,
    status: LoginStatus,
    /// `status`, published ([`StatusCell`]).
    published: StatusCell,
    user: String,
    sig: String,
    epoch: u64,
    link: Option<Link>,
    pending: HashMap<u64, PendingReq>,
    next_id: u64,
    backoff: Backoff,
    login_waiter: Option<oneshot::Sender<Result<()>>>,
    reconnect: Option<SpawnHandle>,
    server_offset_ms: i64,
    device_id: String,
    last_store: Option<(PathBuf, Weak<SledStore>)>,
    /// This login session moved from the transport plugin to WebSocket.
    fallen_back: bool,
    /// The current connection attempt goes through the transport plugin.
    on_plugin: bool,
    /// Device state the server must know (offline push token, background flag), by key: sent
    /// again after every (re)login so that it survives reconnects ([`SessionRequest`]).
    session_state: Vec<(&'static str, request::Kind)>,
    /// Message pushes received since the mailbox was last empty, handed to the MessageActor as
    /// one burst (one store batch there) before anything that came after them.
    msg_burst: Vec<pb::MessagePush>,
}

impl ConnectionActor {
    /// A disconnected actor, publishing its login status in `published`.
    pub fn new(shared: Shared, published: StatusCell) -> Self {
        let backoff = Backoff::new(
            Duration::from_millis(shared.config.reconnect_min_ms),
            Duration::from_millis(shared.config.reconnect_max_ms),
        );
        let device_id = device_id(&shared.config.data_dir);
        Self {
            shared,
            peers: None,
            status: LoginStatus::Logout,
            published,
            user: String::new(),
            sig: String::new(),
            epoch: 0,
            link: None,
            pending: HashMap::new(),
            next_id: transport::LOGIN_REQUEST_ID + 1,
            backoff,
            login_waiter: None,
            reconnect: None,
            server_offset_ms: 0,
            device_id,
            last_store: None,
            fallen_back: false,
            on_plugin: false,
            session_state: Vec::new(),
            msg_burst: Vec::new(),
        }
    }

    fn peers(&self) -> Option<&Peers> {
        self.peers.as_ref()
    }

    fn set_status(&mut self, status: LoginStatus) {
        self.status = status;
        self.published.set(status);
    }

    fn platform(&self) -> pb::Platform {
        match self.shared.config.platform.as_deref() {
            Some("windows") => pb::Platform::Windows,
            Some("mac") => pb::Platform::Mac,
            Some("android") => pb::Platform::Android,
            Some("ios") => pb::Platform::Ios,
            Some("web") => pb::Platform::Web,
            Some("unity") => pb::Platform::Unity,
            Some("unreal") => pb::Platform::Unreal,
            Some("linux") => pb::Platform::Linux,
            _ => match std::env::consts::OS {
                "windows" => pb::Platform::Windows,
                "macos" => pb::Platform::Mac,
                "android" => pb::Platform::Android,
                "ios" => pb::Platform::Ios,
                _ => pb::Platform::Linux,
            },
        }
    }

    fn start_connect(&mut self, ctx: &mut Context<Self>) {
        self.epoch += 1;
        self.shared.events.emit("on_connecting", json!({}));
        let carrier = match self.carrier() {
            Ok(carrier) => carrier,
            Err(e) if transport::falls_back(&self.shared.config, &e) => {
                self.fall_back(&e);
                Carrier::WebSocket(self.shared.config.server_url.clone())
            }
            Err(e) => {
                ctx.address().do_send(FromTransport {
                    epoch: self.epoch,
                    event: TransportEvent::Failed(e),
                });
                return;
            }
        };
        self.on_plugin = matches!(carrier, Carrier::Plugin { .. });
        let dial = Dial {
            carrier,
            login: pb::LoginReq {
                protocol_version: chime_proto::PROTOCOL_VERSION,
                sdk_app_id: self.shared.config.sdk_app_id,
                user_id: self.user.clone(),
                user_sig: self.sig.clone(),
                platform: self.platform() as i32,
                device_id: self.device_id.clone(),
                sdk_version: crate::VERSION.to_owned(),
            },
            max_frame: frame::DEFAULT_MAX_FRAME_BYTES,
            timeout: Duration::from_millis(self.shared.config.connect_timeout_ms),
            epoch: self.epoch,
        };
        let to = ctx.address().recipient();
        actix::spawn(transport::run(dial, to));
    }

    /// The carrier of the next connection attempt: the configured transport plugin, unless this
    /// login session fell back to WebSocket. An error means the plugin cannot be used.
    fn carrier(&self) -> Result<Carrier> {
        match transport::select(&self.shared.config, self.fallen_back)? {
            Selection::WebSocket => Ok(Carrier::WebSocket(self.shared.config.server_url.clone())),
            Selection::Plugin { name, url } => {
                let plugin = self
                    .peers()
                    .and_then(|p| p.plugins.transport(&name))
                    .ok_or_else(|| {
                        ApiError::new(
                            codes::ERR_NOT_AVAILABLE,
                            format!("transport {name}: no such transport plugin loaded"),
                        )
                    })?;
                Ok(Carrier::Plugin { plugin, url })
            }
        }
    }

    /// Moves this login session to WebSocket and says so (`on_transport_fallback`).
    fn fall_back(&mut self, reason: &ApiError) {
        self.fallen_back = true;
        let transport = self.shared.config.transport.clone().unwrap_or_default();
        tracing::warn!("transport {transport} unusable, falling back to websocket: {reason}");
        self.shared.events.emit(
            "on_transport_fallback",
            json!({
                "transport": transport,
                "fallback_transport": transport::WEBSOCKET,
                "code": reason.code,
                "desc": reason.desc,
            }),
        );
    }

    fn schedule_reconnect(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.reconnect.take() {
            ctx.cancel_future(h);
        }
        let delay = self.backoff.next_delay(rand::random::<f64>());
        tracing::info!("reconnect attempt {} in {delay:?}", self.backoff.attempts());
        self.reconnect = Some(ctx.run_later(delay, |act, ctx| {
            act.reconnect = None;
            if act.status == LoginStatus::Logined && act.link.is_none() {
                act.start_connect(ctx);
            }
        }));
    }

    fn fail_pending(&mut self, code: i32, desc: &str) {
        for (_, p) in self.pending.drain() {
            if let Some(tx) = p.tx {
                let _ = tx.send(Err(ApiError::new(code, desc)));
            }
        }
    }

    /// The link is gone (closed, dead, or torn down): forget it and tell the others.
    fn link_lost(&mut self) {
        if self.link.take().is_some() {
            self.epoch += 1;
            self.fail_pending(codes::ERR_NET_DISCONNECT, "network disconnected");
            if let Some(p) = self.peers() {
                p.msg.do_send(Offline);
            }
        }
    }

    /// Ends the session locally: no link, no reconnect, account closed.
    fn end_session(&mut self, ctx: &mut Context<Self>) {
        self.link_lost();
        self.epoch += 1;
        if let Some(h) = self.reconnect.take() {
            ctx.cancel_future(h);
        }
        self.set_status(LoginStatus::Logout);
        self.user.clear();
        self.sig.clear();
    }

    fn close_account(&mut self) -> Vec<ResponseFuture<()>> {
        // The session's last pushes are taken in before the account closes.
        self.hand_over_msg_burst();
        let Some(p) = self.peers().cloned() else {
            return Vec::new();
        };
        vec![Box::pin(async move {
            let _ = p.msg.send(CloseAccount).await;
            let _ = p.conv.send(CloseAccount).await;
            let _ = p.group.send(CloseAccount).await;
            let _ = p.rel.send(CloseAccount).await;
        })]
    }

    fn open_store(&mut self, user: &str) -> Result<Arc<SledStore>> {
        let dir = self
            .shared
            .config
            .data_dir
            .join(self.shared.config.sdk_app_id.to_string())
            .join(user);
        if let Some((path, weak)) = &self.last_store
            && *path == dir
            && let Some(s) = weak.upgrade()
        {
            return Ok(s);
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| ApiError::new(codes::ERR_IO, format!("{}: {e}", dir.display())))?;
        // A store just released by actors that are still dropping it may hold sled's lock for a
        // moment: retry briefly.
        let mut last = None;
        for _ in 0..50 {
            match SledStore::open(&dir) {
                Ok(s) => {
                    let s = Arc::new(s);
                    self.last_store = Some((dir, Arc::downgrade(&s)));
                    return Ok(s);
                }
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        Err(last.map_or_else(
            || ApiError::new(codes::ERR_DATABASE, "store open failed"),
            super::db_err,
        ))
    }

    fn on_response(&mut self, id: u64, resp: pb::Response) {
        if let Some(p) = self.pending.remove(&id)
            && let Some(tx) = p.tx
        {
            let r = if resp.code == codes::OK {
                Ok(resp)
            } else {
                Err(ApiError::new(resp.code, resp.desc))
            };
            let _ = tx.send(r);
        }
    }

    /// Hands the gathered message pushes to the MessageActor.
    fn hand_over_msg_burst(&mut self) {
        if self.msg_burst.is_empty() {
            return;
        }
        let burst = std::mem::take(&mut self.msg_burst);
        if let Some(peers) = self.peers() {
            peers.msg.do_send(super::message::PushedBurst(burst));
        }
    }

    fn on_push(&mut self, push: pb::Push, ctx: &mut Context<Self>) {
        let Some(peers) = self.peers().cloned() else {
            return;
        };
        if !matches!(push.kind, Some(push::Kind::Message(_))) {
            self.hand_over_msg_burst();
        }
        match push.kind {
            Some(push::Kind::Message(m)) => {
                let tips = m.message.as_ref().filter(|msg| {
                    msg.elems
                        .iter()
                        .any(|e| matches!(e.content, Some(pb::elem::Content::GroupTips(_))))
                });
                if let Some(msg) = tips {
                    peers.group.do_send(super::group::GroupTips(msg.clone()));
                }
                self.msg_burst.push(m);
                if self.msg_burst.len() >= super::message::PUSH_BURST {
                    self.hand_over_msg_burst();
                } else if self.msg_burst.len() == 1 {
                    // Runs once the mailbox has been read (actix polls the actor's own futures
                    // after its mailbox).
                    ctx.spawn(fut::ready(()).map(|_, act: &mut Self, _| act.hand_over_msg_burst()));
                }
            }
            Some(push::Kind::GroupNotify(g)) => {
                peers.group.do_send(super::group::GroupNotified(g));
            }
            Some(push::Kind::Read(r)) => peers.conv.do_send(super::conversation::ReadPushed(r)),
            Some(push::Kind::MessageChange(c)) => {
                peers.msg.do_send(super::message::ChangePushed(c));
            }
            Some(push::Kind::Annotation(a)) => {
                peers.msg.do_send(super::message::AnnotationPushed(a));
            }
            Some(push::Kind::GroupPin(p)) => peers.msg.do_send(super::message::PinPushed(p)),
            Some(push::Kind::ConvSettings(s)) => {
                peers.conv.do_send(super::conversation::SettingsPushed(s));
            }
            Some(push::Kind::PeerRead(r)) => {
                peers.conv.do_send(super::conversation::PeerReadPushed(r));
            }
            Some(push::Kind::MessageReceipt(r)) => {
                peers.conv.do_send(super::conversation::ReceiptsPushed(r));
            }
            Some(push::Kind::GroupChange(g)) => peers.group.do_send(super::group::GroupChanged(g)),
            Some(
                k @ (push::Kind::RelationChanged(_)
                | push::Kind::UserInfoChanged(_)
                | push::Kind::UserStatus(_)
                | push::Kind::FollowChanged(_)),
            ) => peers.rel.do_send(super::relationship::Pushed(k)),
            Some(push::Kind::Signaling(s)) => {
                if let Some((name, data)) = super::signaling::event_of(&s) {
                    self.shared.events.emit(name, data);
                }
            }
            Some(push::Kind::Community(c)) => {
                if let Some((name, data)) = super::community::event_of(&c) {
                    self.shared.events.emit(name, data);
                }
            }
            Some(push::Kind::Kicked(k)) => {
                tracing::info!("kicked offline: {} {}", k.code, k.desc);
                self.end_session(ctx);
                for f in self.close_account() {
                    ctx.spawn(f.into_actor(self));
                }
                self.shared.events.emit("on_kicked_offline", json!({}));
            }
            Some(push::Kind::UserSigExpired(_)) => {
                self.end_session(ctx);
                for f in self.close_account() {
                    ctx.spawn(f.into_actor(self));
                }
                self.shared.events.emit("on_user_sig_expired", json!({}));
            }
            None => {}
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(PendingReq { tx: Some(tx), .. }) = self.pending.remove(&id) {
                let _ = tx.send(Err(ApiError::new(
                    codes::ERR_REQUEST_TIMEOUT,
                    "request timed out",
                )));
            }
        }
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.heartbeat.is_dead(now) {
            tracing::info!("connection silent too long, reconnecting");
            self.link_lost();
            self.shared.events.emit(
                "on_connect_failed",
                json!({"code": codes::ERR_NET_DISCONNECT, "desc": "heartbeat timeout"}),
            );
            self.schedule_reconnect(ctx);
        } else if link.heartbeat.poll_send(now) {
            let _ = self.send_request(request::Kind::Heartbeat(pb::HeartbeatReq {}), None);
        }
    }

    fn send_request(
        &mut self,
        kind: request::Kind,
        tx: Option<oneshot::Sender<Result<pb::Response>>>,
    ) -> Result<()> {
        let Some(link) = self.link.as_mut() else {
            return Err(ApiError::new(
                codes::ERR_NET_DISCONNECT,
                "network disconnected",
            ));
        };
        let id = self.next_id;
        self.next_id += 1;
        let f = pb::Frame {
            id,
            body: Some(Body::Request(pb::Request { kind: Some(kind) })),
        };
        let bytes = frame::encode(&f, link.max_frame)
            .map_err(|e| ApiError::new(codes::ERR_NET_PKG_SIZE_LIMIT, e.to_string()))?;
        if link.tx.send(bytes).is_err() {
            return Err(ApiError::new(
                codes::ERR_NET_DISCONNECT,
                "network disconnected",
            ));
        }
        link.heartbeat.on_send(Instant::now());
        self.pending.insert(
            id,
            PendingReq {
                tx,
                deadline: Instant::now()
                    + Duration::from_millis(self.shared.config.request_timeout_ms),
            },
        );
        Ok(())
    }
}

/// A stable per-data-dir device id (the server tells a reconnect from a second device by it).
fn device_id(data_dir: &std::path::Path) -> String {
    let path = data_dir.join("device_id");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if !s.is_empty() {
            return s.to_owned();
        }
    }
    let id = format!("{:016x}", rand::random::<u64>());
    let _ = std::fs::create_dir_all(data_dir);
    let _ = std::fs::write(&path, &id);
    id
}

impl Actor for ConnectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }
}

/// Tells the actor its peers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPeers(pub Peers);

impl Handler<SetPeers> for ConnectionActor {
    type Result = ();
    fn handle(&mut self, msg: SetPeers, _: &mut Context<Self>) {
        self.peers = Some(msg.0);
    }
}

/// `login`: opens the account's store and connects; answers when the server accepted (or
/// refused) the login.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Login {
    /// User.
    pub user: String,
    /// UserSig.
    pub sig: String,
}

impl Handler<Login> for ConnectionActor {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: Login, ctx: &mut Context<Self>) -> Self::Result {
        let err = |e: ApiError| -> Self::Result { Box::pin(async move { Err(e) }) };
        match self.status {
            LoginStatus::Logining => {
                return err(ApiError::new(codes::ERR_IN_PROCESS, "login in progress"));
            }
            LoginStatus::Logined if self.user == msg.user => {
                return Box::pin(async { Ok(()) });
            }
            LoginStatus::Logined => {
                return err(ApiError::new(
                    codes::ERR_IN_PROCESS,
                    "logged in as another user",
                ));
            }
            LoginStatus::Logout => {}
        }
        if !ids::is_valid_user_id(&msg.user) {
            return err(ApiError::new(codes::ERR_INVALID_USER_ID, "invalid user_id"));
        }
        if msg.sig.is_empty() {
            return err(ApiError::invalid_param("user_sig is empty"));
        }
        let store = match self.open_store(&msg.user) {
            Ok(s) => s,
            Err(e) => return err(e),
        };
        let account = Account {
            user: msg.user.clone(),
            store,
        };
        if let Some(p) = self.peers() {
            p.msg.do_send(OpenAccount(account.clone()));
            p.conv.do_send(OpenAccount(account.clone()));
            p.group.do_send(OpenAccount(account.clone()));
            p.rel.do_send(OpenAccount(account));
        }
        self.set_status(LoginStatus::Logining);
        self.user = msg.user;
        self.sig = msg.sig;
        self.backoff.reset();
        self.fallen_back = false;
        let (tx, rx) = oneshot::channel();
        self.login_waiter = Some(tx);
        self.start_connect(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(ApiError::new(codes::ERR_INTERRUPTED, "interrupted")))
        })
    }
}

/// `logout`: tells the server, closes the connection and the account.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Logout;

impl Handler<Logout> for ConnectionActor {
    type Result = ResponseActFuture<Self, Result<()>>;

    fn handle(&mut self, _: Logout, _: &mut Context<Self>) -> Self::Result {
        if self.status == LoginStatus::Logout {
            return Box::pin(actix::fut::ready(Ok(())));
        }
        if let Some(w) = self.login_waiter.take() {
            let _ = w.send(Err(ApiError::new(codes::ERR_INTERRUPTED, "logged out")));
        }
        let (tx, rx) = oneshot::channel();
        let sent = self
            .send_request(request::Kind::Logout(pb::LogoutReq {}), Some(tx))
            .is_ok();
        let bye = async move {
            if sent {
                let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
            }
        };
        Box::pin(bye.into_actor(self).then(|_, act, ctx| {
            act.end_session(ctx);
            let closes = act.close_account();
            async move {
                for f in closes {
                    f.await;
                }
                Ok(())
            }
            .into_actor(act)
        }))
    }
}

/// Sends one request and answers the server's response (a non-zero code is an error).
#[derive(Message)]
#[rtype(result = "Result<pb::Response>")]
pub struct Rpc(pub request::Kind);

impl Handler<Rpc> for ConnectionActor {
    type Result = ResponseFuture<Result<pb::Response>>;

    fn handle(&mut self, msg: Rpc, _: &mut Context<Self>) -> Self::Result {
        if self.status == LoginStatus::Logout {
            return Box::pin(async {
                Err(ApiError::new(codes::ERR_SDK_NOT_LOGGED_IN, "not logged in"))
            });
        }
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.send_request(msg.0, Some(tx)) {
            return Box::pin(async move { Err(e) });
        }
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ApiError::new(
                    codes::ERR_NET_DISCONNECT,
                    "network disconnected",
                ))
            })
        })
    }
}

/// A request that sets part of this device's state on the server (the offline push token,
/// foreground / background): remembered under `key` (replacing the previous one), sent now when
/// connected, and sent again after every (re)login, so that the server's view survives
/// reconnects. Answers `Ok` when not connected (it goes out at the next login).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct SessionRequest {
    /// What part of the state it sets.
    pub key: &'static str,
    /// The request.
    pub kind: request::Kind,
}

impl Handler<SessionRequest> for ConnectionActor {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: SessionRequest, _: &mut Context<Self>) -> Self::Result {
        match self.session_state.iter_mut().find(|(k, _)| *k == msg.key) {
            Some(slot) => slot.1 = msg.kind.clone(),
            None => self.session_state.push((msg.key, msg.kind.clone())),
        }
        if self.status != LoginStatus::Logined || self.link.is_none() {
            return Box::pin(async { Ok(()) });
        }
        let (tx, rx) = oneshot::channel();
        if self.send_request(msg.kind, Some(tx)).is_err() {
            return Box::pin(async { Ok(()) });
        }
        Box::pin(async move {
            match rx.await {
                Ok(Ok(_)) | Err(_) => Ok(()),
                // Lost with the connection: the next login sends it again.
                Ok(Err(e)) if e.code == codes::ERR_NET_DISCONNECT => Ok(()),
                Ok(Err(e)) => Err(e),
            }
        })
    }
}

/// `(status, user)`.
#[derive(Message)]
#[rtype(result = "(LoginStatus, String)")]
pub struct GetStatus;

impl Handler<GetStatus> for ConnectionActor {
    type Result = MessageResult<GetStatus>;
    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        let user = if self.status == LoginStatus::Logout {
            String::new()
        } else {
            self.user.clone()
        };
        MessageResult((self.status, user))
    }
}

/// The server's clock (seconds), estimated from the login answer.
#[derive(Message)]
#[rtype(result = "i64")]
pub struct ServerTime;

impl Handler<ServerTime> for ConnectionActor {
    type Result = i64;
    fn handle(&mut self, _: ServerTime, _: &mut Context<Self>) -> i64 {
        (now_ms() + self.server_offset_ms).div_euclid(1000)
    }
}

impl Handler<FromTransport> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, msg: FromTransport, ctx: &mut Context<Self>) {
        if msg.epoch != self.epoch {
            return; // news from a connection we already gave up on
        }
        // Message pushes gathered so far go before anything else that came after them.
        if !matches!(&msg.event, TransportEvent::Frame(f) if matches!(f.body, Some(Body::Push(_))))
        {
            self.hand_over_msg_burst();
        }
        match msg.event {
            TransportEvent::Established { tx, resp } => {
                if self.status == LoginStatus::Logout {
                    return;
                }
                let hb = if resp.heartbeat_interval_ms > 0 {
                    Duration::from_millis(u64::from(resp.heartbeat_interval_ms))
                } else {
                    DEFAULT_HEARTBEAT
                };
                let max_frame = if resp.max_frame_bytes > 0 {
                    resp.max_frame_bytes as usize
                } else {
                    frame::DEFAULT_MAX_FRAME_BYTES
                };
                self.server_offset_ms = resp.server_time_ms - now_ms();
                self.link = Some(Link {
                    tx,
                    heartbeat: Heartbeat::new(hb, Instant::now()),
                    max_frame,
                });
                self.backoff.reset();
                self.set_status(LoginStatus::Logined);
                for (_, kind) in self.session_state.clone() {
                    let _ = self.send_request(kind, None);
                }
                if let Some(w) = self.login_waiter.take() {
                    let _ = w.send(Ok(()));
                }
                self.shared.events.emit("on_connect_success", json!({}));
                if let Some(p) = self.peers() {
                    p.msg.do_send(Online(self.epoch));
                    p.rel.do_send(Online(self.epoch));
                }
            }
            TransportEvent::Failed(e)
                if self.on_plugin
                    && self.status != LoginStatus::Logout
                    && transport::falls_back(&self.shared.config, &e) =>
            {
                self.fall_back(&e);
                self.start_connect(ctx);
            }
            TransportEvent::Failed(e) => {
                self.shared
                    .events
                    .emit("on_connect_failed", json!({"code": e.code, "desc": e.desc}));
                let auth = (70000..70400).contains(&e.code);
                if self.status == LoginStatus::Logining || auth {
                    let was_logined = self.status == LoginStatus::Logined;
                    // Logged out (and published so) before the caller hears of it.
                    self.end_session(ctx);
                    if let Some(w) = self.login_waiter.take() {
                        let _ = w.send(Err(e.clone()));
                    }
                    for f in self.close_account() {
                        ctx.spawn(f.into_actor(self));
                    }
                    if was_logined && e.code == codes::ERR_SVR_USER_SIG_EXPIRED {
                        self.shared.events.emit("on_user_sig_expired", json!({}));
                    }
                } else if self.status == LoginStatus::Logined {
                    self.schedule_reconnect(ctx);
                }
            }
            TransportEvent::Frame(f) => {
                if let Some(l) = self.link.as_mut() {
                    l.heartbeat.on_receive(Instant::now());
                }
                let f = *f;
                match f.body {
                    Some(Body::Response(r)) => self.on_response(f.id, r),
                    Some(Body::Push(p)) => self.on_push(p, ctx),
                    _ => {}
                }
            }
            TransportEvent::Closed => {
                if self.link.is_some() {
                    self.link_lost();
                    if self.status == LoginStatus::Logined {
                        self.shared.events.emit(
                            "on_connect_failed",
                            json!({"code": codes::ERR_NET_DISCONNECT, "desc": "connection closed"}),
                        );
                        self.schedule_reconnect(ctx);
                    }
                }
            }
        }
    }
}
