//! The built-in WebSocket transport: a plain tokio task per connection that connects, performs
//! the login handshake, then pumps frames both ways. It owns no state worth keeping; everything
//! it learns goes to the ConnectionActor as [`FromTransport`] messages tagged with the
//! connection's epoch, so that news from a dead connection is recognisably stale.

use std::time::Duration;

use actix::prelude::*;
use chime_proto::pb::{self, frame::Body};
use chime_proto::{codes, frame};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::ApiError;

/// Request id of the login request on every connection.
pub const LOGIN_REQUEST_ID: u64 = 1;

/// What a connection reports.
pub enum TransportEvent {
    /// Connected and logged in; frames to send go into `tx` (dropping it closes the connection).
    Established {
        /// Outgoing encoded frames.
        tx: mpsc::UnboundedSender<Vec<u8>>,
        /// The server's login answer.
        resp: pb::LoginResp,
    },
    /// Connecting or logging in failed.
    Failed(ApiError),
    /// A frame arrived.
    Frame(Box<pb::Frame>),
    /// The connection ended.
    Closed,
}

/// A [`TransportEvent`] of connection `epoch`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromTransport {
    /// The connection attempt it belongs to.
    pub epoch: u64,
    /// What happened.
    pub event: TransportEvent,
}

/// How to connect.
pub struct Dial {
    /// `ws://...` endpoint.
    pub url: String,
    /// The login request.
    pub login: pb::LoginReq,
    /// Largest frame either way.
    pub max_frame: usize,
    /// Connect + login handshake timeout.
    pub timeout: Duration,
    /// Epoch tag.
    pub epoch: u64,
}

async fn handshake(
    dial: &Dial,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        pb::LoginResp,
    ),
    ApiError,
> {
    let fail = |code: i32| move |e: String| ApiError::new(code, e);
    let (mut ws, _) = tokio_tungstenite::connect_async(dial.url.as_str())
        .await
        .map_err(|e| fail(codes::ERR_NET_CONNECT_FAILED)(format!("connect {}: {e}", dial.url)))?;
    let login = pb::Frame {
        id: LOGIN_REQUEST_ID,
        body: Some(Body::Request(pb::Request {
            kind: Some(pb::request::Kind::Login(dial.login.clone())),
        })),
    };
    let bytes = frame::encode(&login, dial.max_frame)
        .map_err(|e| fail(codes::ERR_NET_PKG_SIZE_LIMIT)(e.to_string()))?;
    ws.send(WsMessage::Binary(bytes.into()))
        .await
        .map_err(|e| fail(codes::ERR_NET_CONNECT_FAILED)(e.to_string()))?;
    loop {
        let msg = ws
            .next()
            .await
            .ok_or_else(|| {
                ApiError::new(
                    codes::ERR_NET_CONNECT_FAILED,
                    "connection closed during login",
                )
            })?
            .map_err(|e| fail(codes::ERR_NET_CONNECT_FAILED)(e.to_string()))?;
        let WsMessage::Binary(b) = msg else {
            if let WsMessage::Close(_) = msg {
                return Err(ApiError::new(
                    codes::ERR_NET_CONNECT_FAILED,
                    "connection closed during login",
                ));
            }
            continue;
        };
        let f = frame::decode(&b, dial.max_frame)
            .map_err(|e| fail(codes::ERR_PARSE_RESPONSE)(e.to_string()))?;
        if f.id != LOGIN_REQUEST_ID {
            continue;
        }
        let Some(Body::Response(resp)) = f.body else {
            continue;
        };
        if resp.code != codes::OK {
            return Err(ApiError::new(resp.code, resp.desc));
        }
        return match resp.kind {
            Some(pb::response::Kind::Login(l)) => Ok((ws, l)),
            _ => Err(ApiError::new(
                codes::ERR_PARSE_RESPONSE,
                "login answer without LoginResp",
            )),
        };
    }
}

/// Connects, logs in and pumps frames until the connection ends or `tx` is dropped.
pub async fn run(dial: Dial, to: Recipient<FromTransport>) {
    let epoch = dial.epoch;
    let report = |event| to.do_send(FromTransport { epoch, event });
    let (ws, resp) = match tokio::time::timeout(dial.timeout, handshake(&dial)).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return report(TransportEvent::Failed(e)),
        Err(_) => {
            return report(TransportEvent::Failed(ApiError::new(
                codes::ERR_NET_CONNECT_FAILED,
                "connect/login timed out",
            )));
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    report(TransportEvent::Established { tx, resp });
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(bytes) => {
                    if sink.feed(WsMessage::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                    // Batch whatever else is queued into one flush.
                    let mut ok = true;
                    while let Ok(more) = rx.try_recv() {
                        if sink.feed(WsMessage::Binary(more.into())).await.is_err() {
                            ok = false;
                            break;
                        }
                    }
                    if !ok || sink.flush().await.is_err() {
                        break;
                    }
                }
                None => {
                    let _ = sink.close().await;
                    break;
                }
            },
            inc = stream.next() => match inc {
                Some(Ok(WsMessage::Binary(b))) => match frame::decode(&b, dial.max_frame) {
                    Ok(f) => report(TransportEvent::Frame(Box::new(f))),
                    Err(e) => {
                        tracing::warn!("dropping connection: {e}");
                        break;
                    }
                },
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    report(TransportEvent::Closed);
}
