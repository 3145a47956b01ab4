//! Integration tests of `chime-server`: a real server on 127.0.0.1:0 with its own temp data dir,
//! driven by a small raw protocol client (tokio-tungstenite + chime-proto).

// Helpers of a test binary: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod binary;
mod groups;
mod login;
mod messaging;
mod sessions;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chime_proto::pb::{
    self, frame::Body, push::Kind as PushKind, request::Kind as ReqKind, response::Kind as RespKind,
};
use chime_server::{RunningServer, ServerConfig, Tunables, usersig};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) const APP: u64 = 1_400_000_000;
pub(crate) const KEY: &str = "test-secret-key-app-one";
pub(crate) const APP2: u64 = 1_400_000_001;
pub(crate) const KEY2: &str = "test-secret-key-app-two";
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// An in-process server with its own data dir.
pub(crate) struct TestServer {
    pub(crate) server: Option<RunningServer>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) tunables: Tunables,
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(Tunables::default()).await
    }

    pub(crate) async fn start_with(tunables: Tunables) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = Self::boot(dir.path(), tunables.clone()).await;
        Self {
            server: Some(server),
            dir,
            tunables,
        }
    }

    async fn boot(dir: &std::path::Path, tunables: Tunables) -> RunningServer {
        let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir)
            .with_app(APP, KEY)
            .with_app(APP2, KEY2);
        cfg.tunables = tunables;
        chime_server::start(cfg).await.unwrap()
    }

    pub(crate) fn url(&self) -> String {
        self.server.as_ref().unwrap().ws_url()
    }

    /// Graceful shutdown then a new server on the same data dir (new port).
    pub(crate) async fn restart(&mut self) {
        self.server.take().unwrap().shutdown().await;
        self.server = Some(Self::boot(self.dir.path(), self.tunables.clone()).await);
    }

    /// A client logged in as `user` of APP on a native platform.
    pub(crate) async fn login(&self, user: &str) -> Client {
        self.login_as(APP, KEY, user, pb::Platform::Linux, &format!("dev-{user}"))
            .await
    }

    pub(crate) async fn login_as(
        &self,
        app: u64,
        key: &str,
        user: &str,
        platform: pb::Platform,
        device: &str,
    ) -> Client {
        let mut c = Client::connect(&self.url()).await;
        let sig = usersig::gen_user_sig(app, key, user, 86_400);
        let r = c.login(app, user, &sig, platform, device).await;
        assert_eq!(r.code, 0, "login of {user} failed: {}", r.desc);
        c
    }
}

/// A raw protocol client.
pub(crate) struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    pushes: VecDeque<pb::Push>,
    responses: HashMap<u64, pb::Response>,
    pub(crate) closed: bool,
}

pub(crate) fn text_msg(msg_id: &str, receiver: &str, text: &str) -> pb::Message {
    pb::Message {
        msg_id: msg_id.into(),
        conv_type: pb::ConvType::C2c as i32,
        receiver: receiver.into(),
        elems: vec![pb::Elem {
            content: Some(pb::elem::Content::Text(pb::TextElem { text: text.into() })),
        }],
        ..Default::default()
    }
}

pub(crate) fn group_msg(msg_id: &str, group: &str, text: &str) -> pb::Message {
    pb::Message {
        msg_id: msg_id.into(),
        conv_type: pb::ConvType::Group as i32,
        group_id: group.into(),
        elems: vec![pb::Elem {
            content: Some(pb::elem::Content::Text(pb::TextElem { text: text.into() })),
        }],
        ..Default::default()
    }
}

pub(crate) fn text_of(m: &pb::Message) -> &str {
    match m.elems.first().and_then(|e| e.content.as_ref()) {
        Some(pb::elem::Content::Text(t)) => &t.text,
        _ => "",
    }
}

pub(crate) fn c2c(target: &str) -> pb::ConvRef {
    pb::ConvRef {
        conv_type: pb::ConvType::C2c as i32,
        target: target.into(),
    }
}

pub(crate) fn group(target: &str) -> pb::ConvRef {
    pb::ConvRef {
        conv_type: pb::ConvType::Group as i32,
        target: target.into(),
    }
}

impl Client {
    pub(crate) async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self {
            ws,
            next_id: 0,
            pushes: VecDeque::new(),
            responses: HashMap::new(),
            closed: false,
        }
    }

    pub(crate) async fn login(
        &mut self,
        app: u64,
        user: &str,
        sig: &str,
        platform: pb::Platform,
        device: &str,
    ) -> pb::Response {
        self.login_version(
            chime_proto::PROTOCOL_VERSION,
            app,
            user,
            sig,
            platform,
            device,
        )
        .await
    }

    pub(crate) async fn login_version(
        &mut self,
        version: u32,
        app: u64,
        user: &str,
        sig: &str,
        platform: pb::Platform,
        device: &str,
    ) -> pb::Response {
        self.call(ReqKind::Login(pb::LoginReq {
            protocol_version: version,
            sdk_app_id: app,
            user_id: user.into(),
            user_sig: sig.into(),
            platform: platform as i32,
            device_id: device.into(),
            sdk_version: "test".into(),
        }))
        .await
    }

    /// Sends a request without waiting; returns its id.
    pub(crate) async fn start(&mut self, kind: ReqKind) -> u64 {
        self.next_id += 1;
        let frame = pb::Frame {
            id: self.next_id,
            body: Some(Body::Request(pb::Request { kind: Some(kind) })),
        };
        self.send_raw(WsMessage::Binary(frame.encode_to_vec().into()))
            .await;
        self.next_id
    }

    pub(crate) async fn send_raw(&mut self, m: WsMessage) {
        self.ws.send(m).await.unwrap();
    }

    /// Reads one frame (None on close or timeout), filing responses and pushes.
    async fn pump(&mut self, timeout: Duration) -> Option<()> {
        loop {
            let next = tokio::time::timeout(timeout, self.ws.next()).await.ok()?;
            match next {
                Some(Ok(WsMessage::Binary(b))) => {
                    let frame = pb::Frame::decode(&b[..]).unwrap();
                    match frame.body {
                        Some(Body::Response(r)) => {
                            self.responses.insert(frame.id, r);
                        }
                        Some(Body::Push(p)) => self.pushes.push_back(p),
                        other => panic!("unexpected frame body {other:?}"),
                    }
                    return Some(());
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => {
                    self.closed = true;
                    return None;
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Waits for the response to request `id`.
    pub(crate) async fn wait(&mut self, id: u64) -> pb::Response {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(r) = self.responses.remove(&id) {
                return r;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                self.pump(left).await.is_some(),
                "no response to request {id} (closed: {})",
                self.closed
            );
        }
    }

    pub(crate) async fn call(&mut self, kind: ReqKind) -> pb::Response {
        let id = self.start(kind).await;
        self.wait(id).await
    }

    /// Calls and expects success; returns the response kind.
    pub(crate) async fn ok(&mut self, kind: ReqKind) -> RespKind {
        let r = self.call(kind).await;
        assert_eq!(r.code, 0, "request failed: {} {}", r.code, r.desc);
        r.kind.unwrap()
    }

    pub(crate) async fn send(&mut self, msg: pb::Message) -> pb::Response {
        self.call(ReqKind::SendMessage(pb::SendMessageReq {
            message: Some(msg),
        }))
        .await
    }

    pub(crate) async fn send_ok(&mut self, msg: pb::Message) -> pb::SendMessageResp {
        match self
            .ok(ReqKind::SendMessage(pb::SendMessageReq {
                message: Some(msg),
            }))
            .await
        {
            RespKind::SendMessage(r) => r,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The next push within `timeout`.
    pub(crate) async fn push(&mut self, timeout: Duration) -> Option<pb::Push> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(p) = self.pushes.pop_front() {
                return Some(p);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.pump(left).await?;
        }
    }

    /// Pushes received and not yet taken.
    pub(crate) fn pushes_seen(&self) -> Vec<pb::Push> {
        self.pushes.iter().cloned().collect()
    }

    /// The next push, which must be a message.
    pub(crate) async fn message(&mut self) -> pb::MessagePush {
        loop {
            match self.push(WAIT).await {
                // Group tips (joins, quits...) are messages too; tests here wait for user sends.
                Some(pb::Push {
                    kind: Some(PushKind::Message(m)),
                }) if m.message.as_ref().is_some_and(is_group_tips) => {}
                Some(pb::Push {
                    kind: Some(PushKind::Message(m)),
                }) => return m,
                other => panic!("expected a message push, got {other:?}"),
            }
        }
    }

    /// Asserts nothing is pushed for `d`.
    pub(crate) async fn no_push(&mut self, d: Duration) {
        if let Some(p) = self.push(d).await {
            panic!("unexpected push {p:?}");
        }
    }

    /// Waits until the server closes the connection (bounded).
    pub(crate) async fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.closed {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            if self.pump(left).await.is_none() && !self.closed {
                return false;
            }
        }
        true
    }

    pub(crate) async fn sync(&mut self, cursor: u64, known: Vec<pb::ConvSeq>) -> pb::SyncResp {
        match self
            .ok(ReqKind::Sync(pb::SyncReq {
                cursor,
                limit: 0,
                known_groups: known,
            }))
            .await
        {
            RespKind::Sync(s) => s,
            other => panic!("unexpected {other:?}"),
        }
    }

    pub(crate) async fn pull(&mut self, req: pb::PullMessagesReq) -> pb::PullMessagesResp {
        match self.ok(ReqKind::PullMessages(req)).await {
            RespKind::PullMessages(p) => p,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Whether a message is a group tips message (a membership or profile change).
pub(crate) fn is_group_tips(m: &pb::Message) -> bool {
    m.elems
        .first()
        .is_some_and(|e| matches!(e.content, Some(pb::elem::Content::GroupTips(_))))
}
