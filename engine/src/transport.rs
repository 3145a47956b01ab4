//! The transports: a plain tokio task per connection that connects, performs the login
//! handshake, then pumps frames both ways — over the built-in WebSocket, or over a transport
//! plugin (the QUIC one, `plugins/quic-transport`) reached through the plugin host. It owns no
//! state worth keeping; everything it learns goes to the ConnectionActor as [`FromTransport`]
//! messages tagged with the connection's epoch, so that news from a dead connection is
//! recognisably stale. Above this module nothing knows which carrier is in use.
//!
//! Which carrier a connection uses is decided by [`select`] (I/O-free): the config's `transport`
//! names a plugin, and `transport_url` says where it connects. A dial through the plugin retries
//! network failures, each counted by the plugin host against the plugin, until the host puts
//! the plugin aside (3 failures in a row, its `failure_threshold`); a connection that carries the
//! login ends the streak. When the plugin cannot connect ([`falls_back`]) and
//! `transport_fallback` is on, the ConnectionActor moves the login session to WebSocket and
//! emits `on_transport_fallback` (docs/guide.md); a put-aside plugin answers at once from then
//! on, so later sessions of the engine go to WebSocket without waiting.

use std::time::Duration;

use actix::prelude::*;
use chime_plugin_api::host::{self as plugin_host, TransportPlugin};
use chime_proto::pb::{self, frame::Body};
use chime_proto::{codes, frame};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::{ApiError, EngineConfig};

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

/// The name of the built-in transport in the config's `transport`.
pub const WEBSOCKET: &str = "websocket";

/// What carries a connection.
#[derive(Clone)]
pub enum Carrier {
    /// The built-in WebSocket, to this `ws://` / `wss://` URL.
    WebSocket(String),
    /// A transport plugin connecting to `url`.
    Plugin {
        /// The loaded plugin.
        plugin: TransportPlugin,
        /// Where it connects (the config's `transport_url`).
        url: String,
    },
}

/// What the config asks a connection to use (before looking the plugin up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// WebSocket to `server_url`.
    WebSocket,
    /// The transport plugin `name`, connecting to `url`.
    Plugin {
        /// The plugin's declared name (the config's `transport`).
        name: String,
        /// The config's `transport_url`.
        url: String,
    },
}

/// The carrier the config selects; `fallen_back` = this login session already moved to
/// WebSocket. An error means the plugin path cannot even be tried (no `transport_url`).
pub fn select(config: &EngineConfig, fallen_back: bool) -> Result<Selection, ApiError> {
    match config.transport.as_deref() {
        None | Some(WEBSOCKET) => Ok(Selection::WebSocket),
        Some(_) if fallen_back => Ok(Selection::WebSocket),
        Some(name) => match config.transport_url.as_deref() {
            Some(url) if !url.is_empty() => Ok(Selection::Plugin {
                name: name.to_owned(),
                url: url.to_owned(),
            }),
            _ => Err(ApiError::invalid_param(format!(
                "transport_url is required with transport {name}"
            ))),
        },
    }
}

/// Whether a failure of the plugin path moves the login session to WebSocket: only when the
/// config allows it and the plugin could not carry the connection (not loaded, misconfigured,
/// could not connect). A server that answered the login (a refused UserSig, say) is not a
/// transport failure.
pub fn falls_back(config: &EngineConfig, error: &ApiError) -> bool {
    config.transport_fallback
        && matches!(
            error.code,
            codes::ERR_NET_CONNECT_FAILED
                | codes::ERR_NOT_AVAILABLE
                | codes::ERR_INVALID_PARAMETERS
        )
}

/// How to connect.
pub struct Dial {
    /// What carries the connection.
    pub carrier: Carrier,
    /// The login request.
    pub login: pb::LoginReq,
    /// Largest frame either way.
    pub max_frame: usize,
    /// Connect + login handshake timeout.
    pub timeout: Duration,
    /// Epoch tag.
    pub epoch: u64,
}

/// The login request frame of `dial`.
fn login_frame(dial: &Dial) -> Result<Vec<u8>, ApiError> {
    let login = pb::Frame {
        id: LOGIN_REQUEST_ID,
        body: Some(Body::Request(pb::Request {
            kind: Some(pb::request::Kind::Login(dial.login.clone())),
        })),
    };
    frame::encode(&login, dial.max_frame)
        .map_err(|e| ApiError::new(codes::ERR_NET_PKG_SIZE_LIMIT, e.to_string()))
}

/// The server's answer to the login, if `f` is it.
fn login_answer(f: pb::Frame) -> Option<Result<pb::LoginResp, ApiError>> {
    if f.id != LOGIN_REQUEST_ID {
        return None;
    }
    let Some(Body::Response(resp)) = f.body else {
        return None;
    };
    if resp.code != codes::OK {
        return Some(Err(ApiError::new(resp.code, resp.desc)));
    }
    Some(match resp.kind {
        Some(pb::response::Kind::Login(l)) => Ok(l),
        _ => Err(ApiError::new(
            codes::ERR_PARSE_RESPONSE,
            "login answer without LoginResp",
        )),
    })
}

async fn handshake(
    dial: &Dial,
    url: &str,
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
    // Nagle off: a request is one small frame written once; waiting to coalesce it with the next
    // (which only comes after the answer) would stall it behind the peer's delayed ACK.
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .map_err(|e| fail(codes::ERR_NET_CONNECT_FAILED)(format!("connect {url}: {e}")))?;
    let bytes = login_frame(dial)?;
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
        if let Some(answer) = login_answer(f) {
            return answer.map(|l| (ws, l));
        }
    }
}

/// Connects, logs in and pumps frames until the connection ends or `tx` is dropped.
pub async fn run(dial: Dial, to: Recipient<FromTransport>) {
    match dial.carrier.clone() {
        Carrier::WebSocket(url) => run_websocket(dial, &url, to).await,
        Carrier::Plugin { plugin, url } => run_plugin(dial, plugin, &url, to).await,
    }
}

async fn run_websocket(dial: Dial, url: &str, to: Recipient<FromTransport>) {
    let epoch = dial.epoch;
    let report = |event| to.do_send(FromTransport { epoch, event });
    let (ws, resp) = match tokio::time::timeout(dial.timeout, handshake(&dial, url)).await {
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

/// The plugin's connection, its events, and the server's login answer.
type PluginLink = (
    plugin_host::TransportConnection,
    mpsc::UnboundedReceiver<plugin_host::TransportEvent>,
    pb::LoginResp,
);

/// Why a login through the plugin did not happen.
#[derive(Debug)]
struct PluginFailure {
    /// The error (9510 when the server could not be reached).
    error: ApiError,
    /// The host already counted it against the plugin (a failed `connect` or `send` call).
    counted: bool,
}

impl PluginFailure {
    fn unreachable(desc: String, counted: bool) -> Self {
        Self {
            error: ApiError::new(codes::ERR_NET_CONNECT_FAILED, desc),
            counted,
        }
    }
}

impl From<ApiError> for PluginFailure {
    /// An error that is not the network's (the server answered): nothing to count.
    fn from(error: ApiError) -> Self {
        Self {
            error,
            counted: true,
        }
    }
}

/// Connects through the plugin and logs in. Failing to reach the server is 9510 (which may fall
/// back); the server's refusal keeps its own code.
async fn plugin_handshake(
    dial: &Dial,
    plugin: &TransportPlugin,
    url: &str,
) -> Result<PluginLink, PluginFailure> {
    let (connection, mut events) = plugin
        .connect(url, "{}")
        .await
        .map_err(|e| PluginFailure::unreachable(e.to_string(), true))?;
    connection
        .send(login_frame(dial)?)
        .await
        .map_err(|e| PluginFailure::unreachable(e.to_string(), true))?;
    loop {
        match events.recv().await {
            Some(plugin_host::TransportEvent::Frame(bytes)) => {
                let f = frame::decode(&bytes, dial.max_frame)
                    .map_err(|e| ApiError::new(codes::ERR_PARSE_RESPONSE, e.to_string()))?;
                if let Some(answer) = login_answer(f) {
                    return Ok(answer.map(|resp| (connection, events, resp))?);
                }
            }
            Some(plugin_host::TransportEvent::Error(e)) => {
                tracing::warn!("transport plugin: {e}");
            }
            Some(plugin_host::TransportEvent::Closed(reason)) => {
                return Err(PluginFailure::unreachable(
                    format!("connection closed during login: {reason}"),
                    false,
                ));
            }
            None => {
                return Err(PluginFailure::unreachable(
                    "connection closed during login".to_owned(),
                    false,
                ));
            }
        }
    }
}

/// Pause between two connection attempts through the plugin within one dial.
const PLUGIN_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What to do after a failed attempt through the plugin: try again, or give up with this error.
/// A network failure is tried again until the host has put the plugin aside (its failure
/// threshold in a row, [`TransportPlugin::is_disabled`]); the error then says so. Anything else
/// (the server answered) is final at once.
fn after_failure(failure: &PluginFailure, disabled: bool, attempts: u32) -> Option<ApiError> {
    let error = &failure.error;
    if error.code != codes::ERR_NET_CONNECT_FAILED {
        return Some(error.clone());
    }
    if disabled {
        return Some(ApiError::new(
            error.code,
            format!(
                "transport put aside after {attempts} failed connection attempt(s) in a row: {}",
                error.desc
            ),
        ));
    }
    None
}

/// Dials through the plugin until a login answer, retrying network failures (each counted by
/// the plugin host) until the host puts the plugin aside. A connection that carried the login
/// ends the plugin's failure streak.
async fn plugin_dial(
    dial: &Dial,
    plugin: &TransportPlugin,
    url: &str,
) -> Result<PluginLink, ApiError> {
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let attempt = tokio::time::timeout(dial.timeout, plugin_handshake(dial, plugin, url));
        // A connection dropped here (failed or timed-out login) is closed by the host.
        let failure = match attempt.await {
            Ok(Ok(link)) => {
                plugin.report_connected();
                return Ok(link);
            }
            Ok(Err(failure)) => failure,
            Err(_) => {
                PluginFailure::unreachable(format!("connect/login through {url} timed out"), false)
            }
        };
        if failure.error.code == codes::ERR_NET_CONNECT_FAILED && !failure.counted {
            plugin.report_network_failure(&failure.error.desc);
        } else if failure.error.code != codes::ERR_NET_CONNECT_FAILED {
            // The server answered: the transport itself works.
            plugin.report_connected();
        }
        if let Some(error) = after_failure(&failure, plugin.is_disabled(), attempts) {
            return Err(error);
        }
        tracing::info!(
            "transport plugin attempt {attempts} failed, trying again: {}",
            failure.error
        );
        tokio::time::sleep(PLUGIN_RETRY_PAUSE).await;
    }
}

/// [`run`] over a transport plugin: the same handshake and pump, with the plugin's events in
/// place of WebSocket messages. Sends go through the host (a call thread each, with the call
/// timeout), in order.
async fn run_plugin(dial: Dial, plugin: TransportPlugin, url: &str, to: Recipient<FromTransport>) {
    let epoch = dial.epoch;
    let report = |event| to.do_send(FromTransport { epoch, event });
    let (connection, mut events, resp) = match plugin_dial(&dial, &plugin, url).await {
        Ok(link) => link,
        Err(e) => return report(TransportEvent::Failed(e)),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    report(TransportEvent::Established { tx, resp });
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(bytes) => {
                    if let Err(e) = connection.send(bytes).await {
                        tracing::warn!("transport plugin send: {e}");
                        break;
                    }
                }
                None => break,
            },
            event = events.recv() => match event {
                Some(plugin_host::TransportEvent::Frame(bytes)) => {
                    match frame::decode(&bytes, dial.max_frame) {
                        Ok(f) => report(TransportEvent::Frame(Box::new(f))),
                        Err(e) => {
                            tracing::warn!("dropping connection: {e}");
                            break;
                        }
                    }
                }
                Some(plugin_host::TransportEvent::Error(e)) => {
                    tracing::warn!("transport plugin: {e}");
                }
                Some(plugin_host::TransportEvent::Closed(reason)) => {
                    tracing::info!("transport plugin connection closed: {reason}");
                    break;
                }
                None => break,
            },
        }
    }
    if let Err(e) = connection.close().await {
        tracing::debug!("transport plugin close: {e}");
    }
    report(TransportEvent::Closed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> EngineConfig {
        let mut base = serde_json::json!({
            "sdk_app_id": 1,
            "server_url": "ws://127.0.0.1:1/ws",
            "data_dir": "/tmp/unused",
        });
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn the_config_selects_the_carrier() {
        assert_eq!(
            select(&config(serde_json::json!({})), false),
            Ok(Selection::WebSocket)
        );
        assert_eq!(
            select(
                &config(serde_json::json!({"transport": "websocket"})),
                false
            ),
            Ok(Selection::WebSocket)
        );
        let quic = config(serde_json::json!({
            "transport": "quic",
            "transport_url": "quic://127.0.0.1:7443",
        }));
        assert_eq!(
            select(&quic, false),
            Ok(Selection::Plugin {
                name: "quic".into(),
                url: "quic://127.0.0.1:7443".into()
            })
        );
        assert_eq!(select(&quic, true), Ok(Selection::WebSocket));
        let no_url = select(&config(serde_json::json!({"transport": "quic"})), false).unwrap_err();
        assert_eq!(no_url.code, codes::ERR_INVALID_PARAMETERS);
        assert_eq!(no_url.desc, "transport_url is required with transport quic");
    }

    #[test]
    fn network_failures_are_retried_until_the_plugin_is_put_aside() {
        let network = PluginFailure::unreachable("connect quic://h:1: timed out".into(), true);
        assert!(after_failure(&network, false, 1).is_none());
        assert_eq!(
            after_failure(&network, true, 3),
            Some(ApiError::new(
                codes::ERR_NET_CONNECT_FAILED,
                "transport put aside after 3 failed connection attempt(s) in a row: \
                 connect quic://h:1: timed out"
            ))
        );
        let refused = PluginFailure::from(ApiError::new(codes::ERR_SVR_USER_SIG_EXPIRED, "x"));
        assert_eq!(
            after_failure(&refused, false, 1),
            Some(ApiError::new(codes::ERR_SVR_USER_SIG_EXPIRED, "x"))
        );
    }

    #[test]
    fn only_transport_failures_fall_back_and_only_when_allowed() {
        let on = config(serde_json::json!({"transport": "quic", "transport_url": "quic://h:1"}));
        let off = config(serde_json::json!({
            "transport": "quic",
            "transport_url": "quic://h:1",
            "transport_fallback": false,
        }));
        let unreachable = ApiError::new(codes::ERR_NET_CONNECT_FAILED, "timed out");
        let not_loaded = ApiError::new(codes::ERR_NOT_AVAILABLE, "no plugin");
        let refused = ApiError::new(codes::ERR_SVR_USER_SIG_EXPIRED, "expired");
        assert!(on.transport_fallback);
        assert!(falls_back(&on, &unreachable));
        assert!(falls_back(&on, &not_loaded));
        assert!(!falls_back(&on, &refused));
        assert!(!falls_back(&off, &unreachable));
    }
}
