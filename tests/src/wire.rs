//! A raw-protocol client: `chime.proto` frames over WebSocket with no engine in between.
//!
//! Workloads that measure the server alone (W3 group fan-out, W4 idle connections) need hundreds
//! or thousands of logged-in connections in one process, far more than engines (one actix system
//! thread and one sled database each) can cheaply provide; protocol-level tests need to send
//! frames an engine would never send. Both use this client. It speaks exactly what
//! `docs/protocol.md` describes: a login request first, then pipelined requests correlated by id,
//! and pushes with id 0.

use std::collections::VecDeque;
use std::time::Duration;

use chime_proto::pb;
use chime_proto::pb::frame::Body;
use chime_proto::pb::request::Kind as ReqKind;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What can go wrong on a raw connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The WebSocket failed or closed.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The connection closed.
    #[error("connection closed")]
    Closed,
    /// A binary message was not a frame.
    #[error("undecodable frame: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The server answered a request with an error code.
    #[error("server answered {code}: {desc}")]
    Refused {
        /// The code of api.md §6.
        code: i32,
        /// The server's description.
        desc: String,
    },
    /// No answer in time.
    #[error("timed out")]
    Timeout,
}

/// The sending half of a connection.
pub struct WireSender {
    sink: SplitSink<Ws, WsMessage>,
    next_id: u64,
}

impl WireSender {
    /// Sends one request; answers its id (the response carries the same id).
    pub async fn request(&mut self, kind: ReqKind) -> Result<u64, WireError> {
        self.next_id += 1;
        let frame = pb::Frame {
            id: self.next_id,
            body: Some(Body::Request(pb::Request { kind: Some(kind) })),
        };
        self.sink
            .send(WsMessage::Binary(frame.encode_to_vec().into()))
            .await?;
        Ok(self.next_id)
    }

    /// Closes the WebSocket.
    pub async fn close(&mut self) {
        let _ = self.sink.close().await;
    }
}

/// The receiving half of a connection.
pub struct WireReceiver {
    stream: SplitStream<Ws>,
}

impl WireReceiver {
    /// The next frame (response or push).
    pub async fn next_frame(&mut self) -> Result<pb::Frame, WireError> {
        loop {
            match self.stream.next().await {
                None => return Err(WireError::Closed),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(WsMessage::Binary(b))) => return Ok(pb::Frame::decode(&b[..])?),
                Some(Ok(WsMessage::Close(_))) => return Err(WireError::Closed),
                Some(Ok(_)) => {}
            }
        }
    }
}

/// A logged-in raw connection.
pub struct WireClient {
    tx: WireSender,
    rx: WireReceiver,
    /// Pushes that arrived while [`WireClient::call`] waited for a response.
    pushes: VecDeque<pb::Push>,
}

/// How long [`WireClient::call`] waits for its response.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl WireClient {
    /// Connects to `url` and logs `user` in with `user_sig` from a Linux device named `device`.
    pub async fn login(
        url: &str,
        sdk_app_id: u64,
        user: &str,
        user_sig: &str,
        device: &str,
    ) -> Result<WireClient, WireError> {
        Self::login_with_config(url, None, sdk_app_id, user, user_sig, device).await
    }

    /// [`WireClient::login`] with a WebSocket configuration (`None`: tungstenite's defaults,
    /// whose 128 KiB read buffer each connection allocates and zeroes up front — a workload of
    /// thousands of idle connections, W4, sets a small one so that its clients' page faults do
    /// not share the cores with the server it measures).
    pub async fn login_with_config(
        url: &str,
        config: Option<WebSocketConfig>,
        sdk_app_id: u64,
        user: &str,
        user_sig: &str,
        device: &str,
    ) -> Result<WireClient, WireError> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, config, false).await?;
        let (sink, stream) = ws.split();
        let mut client = WireClient {
            tx: WireSender { sink, next_id: 0 },
            rx: WireReceiver { stream },
            pushes: VecDeque::new(),
        };
        let login = ReqKind::Login(pb::LoginReq {
            protocol_version: chime_proto::PROTOCOL_VERSION,
            sdk_app_id,
            user_id: user.into(),
            user_sig: user_sig.into(),
            platform: pb::Platform::Linux as i32,
            device_id: device.into(),
            sdk_version: "chime-tests wire".into(),
        });
        client.call(login).await?;
        Ok(client)
    }

    /// Sends a request and waits for its response (pushes meanwhile are kept for
    /// [`WireClient::next_push`]); a non-zero code is [`WireError::Refused`].
    pub async fn call(&mut self, kind: ReqKind) -> Result<pb::Response, WireError> {
        let id = self.tx.request(kind).await?;
        let wait = async {
            loop {
                let frame = self.rx.next_frame().await?;
                match frame.body {
                    Some(Body::Response(r)) if frame.id == id => return Ok::<_, WireError>(r),
                    Some(Body::Push(p)) => self.pushes.push_back(p),
                    _ => {}
                }
            }
        };
        let r: pb::Response = tokio::time::timeout(CALL_TIMEOUT, wait)
            .await
            .map_err(|_| WireError::Timeout)??;
        if r.code != 0 {
            return Err(WireError::Refused {
                code: r.code,
                desc: r.desc,
            });
        }
        Ok(r)
    }

    /// The next push (one kept by [`WireClient::call`] first); responses are skipped.
    pub async fn next_push(&mut self) -> Result<pb::Push, WireError> {
        if let Some(p) = self.pushes.pop_front() {
            return Ok(p);
        }
        loop {
            if let Some(Body::Push(p)) = self.rx.next_frame().await?.body {
                return Ok(p);
            }
        }
    }

    /// Splits into halves that can live on different tasks (pushes kept by `call` are dropped).
    pub fn split(self) -> (WireSender, WireReceiver) {
        (self.tx, self.rx)
    }
}

/// A message of one text elem to a group, with a client msg id.
pub fn group_text(group_id: &str, msg_id: &str, text: &str) -> pb::Message {
    pb::Message {
        msg_id: msg_id.into(),
        conv_type: pb::ConvType::Group as i32,
        group_id: group_id.into(),
        elems: vec![text_elem(text)],
        ..Default::default()
    }
}

/// A message of one text elem to a user, with a client msg id.
pub fn c2c_text(receiver: &str, msg_id: &str, text: &str) -> pb::Message {
    pb::Message {
        msg_id: msg_id.into(),
        conv_type: pb::ConvType::C2c as i32,
        receiver: receiver.into(),
        elems: vec![text_elem(text)],
        ..Default::default()
    }
}

fn text_elem(text: &str) -> pb::Elem {
    pb::Elem {
        content: Some(pb::elem::Content::Text(pb::TextElem { text: text.into() })),
    }
}

/// The text of a message's first text elem ("" if none).
pub fn first_text(m: &pb::Message) -> &str {
    m.elems
        .iter()
        .find_map(|e| match &e.content {
            Some(pb::elem::Content::Text(t)) => Some(t.text.as_str()),
            _ => None,
        })
        .unwrap_or("")
}
