//! One QUIC connection: a quinn client endpoint of its own, one bidirectional stream, and two
//! tasks on the plugin's runtime — a writer draining the frames `send` queued, a reader splitting
//! the stream back into frames for the host.
//!
//! On the stream every frame is an encoded `chime_proto` `Frame` prefixed with its length as a
//! big-endian `u32` (docs/protocol.md, "stream transports"), the framing the server's QUIC
//! endpoint reads. The stream gives QUIC's guarantees: in order, retransmitted on loss, so a lossy
//! path slows frames down and never drops or duplicates one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chime_plugin_api::{PluginCallError, TransportConnection, TransportEvents};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{IdleTimeout, RecvStream, SendStream, TransportConfig, VarInt};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{QuicConfig, Target};
use crate::tls;

/// The application close code of a connection the host closed.
const CLOSED_BY_HOST: u32 = 0;

/// Prefixes `frame` with its length (big-endian `u32`).
pub fn prefixed(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + frame.len());
    out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    out.extend_from_slice(frame);
    out
}

/// An open connection.
pub struct QuicConnection {
    outgoing: Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    connection: quinn::Connection,
    endpoint: quinn::Endpoint,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    max_frame_bytes: usize,
}

/// Opens a connection to `target` on `runtime`, blocking the calling (host call) thread until it
/// is established or failed.
pub fn open(
    runtime: &Handle,
    target: &Target,
    config: &QuicConfig,
    events: TransportEvents,
) -> Result<QuicConnection, PluginCallError> {
    let trust = config
        .trust
        .as_ref()
        .ok_or_else(|| PluginCallError::invalid(crate::config::ConfigError::NoTrust.to_string()))?;
    let crypto = tls::client_config(trust).map_err(|e| PluginCallError::invalid(e.to_string()))?;
    let crypto =
        QuicClientConfig::try_from(crypto).map_err(|e| PluginCallError::failed(e.to_string()))?;
    let mut transport = TransportConfig::default();
    transport.keep_alive_interval(Some(config.keep_alive));
    transport.max_idle_timeout(Some(
        IdleTimeout::try_from(config.idle_timeout)
            .map_err(|e| PluginCallError::invalid(format!("idle_timeout_ms: {e}")))?,
    ));
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(Arc::new(transport));
    let timeout = config.connect_timeout;
    let where_to = format!("quic://{}:{}", target.host, target.port);
    let established = runtime.block_on(async {
        let dial = async {
            let addr = resolve(target).await?;
            let bind: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let mut endpoint =
                quinn::Endpoint::client(bind).map_err(|e| format!("udp socket: {e}"))?;
            endpoint.set_default_client_config(client);
            let connection = endpoint
                .connect(addr, &target.host)
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let (send, recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((endpoint, connection, send, recv))
        };
        match tokio::time::timeout(timeout, dial).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {timeout:?}")),
        }
    });
    let (endpoint, connection, send, recv) =
        established.map_err(|e| PluginCallError::failed(format!("connect {where_to}: {e}")))?;
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = runtime.spawn(write_frames(send, rx, events.clone()));
    let reader = runtime.spawn(read_frames(recv, events, config.max_frame_bytes));
    Ok(QuicConnection {
        outgoing: Mutex::new(Some(tx)),
        connection,
        endpoint,
        tasks: Mutex::new(vec![writer, reader]),
        max_frame_bytes: config.max_frame_bytes,
    })
}

async fn resolve(target: &Target) -> Result<SocketAddr, String> {
    tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("resolve {}: {e}", target.host))?
        .next()
        .ok_or_else(|| format!("resolve {}: no address", target.host))
}

/// Writes queued frames, batching whatever is queued into one write.
async fn write_frames(
    mut send: SendStream,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    events: TransportEvents,
) {
    while let Some(frame) = rx.recv().await {
        let mut batch = prefixed(&frame);
        while let Ok(more) = rx.try_recv() {
            batch.extend_from_slice(&(more.len() as u32).to_be_bytes());
            batch.extend_from_slice(&more);
        }
        if let Err(e) = send.write_all(&batch).await {
            events.error(&format!("write: {e}"));
            return;
        }
    }
    let _ = send.finish();
}

/// Reads length-prefixed frames until the stream or the connection ends, then reports the close.
async fn read_frames(mut recv: RecvStream, events: TransportEvents, max_frame_bytes: usize) {
    let reason = loop {
        let mut length = [0u8; 4];
        match recv.read_exact(&mut length).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => {
                break "server closed the stream".to_owned();
            }
            Err(e) => break e.to_string(),
        }
        let size = u32::from_be_bytes(length) as usize;
        if size > max_frame_bytes {
            break format!("frame of {size} bytes over the limit of {max_frame_bytes}");
        }
        let mut frame = vec![0u8; size];
        if let Err(e) = recv.read_exact(&mut frame).await {
            break e.to_string();
        }
        events.frame(&frame);
    };
    events.closed(&reason);
}

impl TransportConnection for QuicConnection {
    fn send(&self, frame: &[u8]) -> Result<(), PluginCallError> {
        if frame.len() > self.max_frame_bytes {
            return Err(PluginCallError::invalid(format!(
                "frame of {} bytes over the limit of {}",
                frame.len(),
                self.max_frame_bytes
            )));
        }
        let outgoing = self
            .outgoing
            .lock()
            .map_err(|_| PluginCallError::failed("connection state poisoned"))?;
        match outgoing.as_ref() {
            Some(tx) => tx
                .send(frame.to_vec())
                .map_err(|_| PluginCallError::failed("connection lost")),
            None => Err(PluginCallError::failed("connection closed")),
        }
    }

    fn close(&self) {
        if let Ok(mut outgoing) = self.outgoing.lock() {
            outgoing.take();
        }
        self.connection
            .close(VarInt::from_u32(CLOSED_BY_HOST), b"closed");
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
        // The close frame goes out from the endpoint's driver; the socket is released when the
        // last handle (this one) drops.
        self.endpoint
            .close(VarInt::from_u32(CLOSED_BY_HOST), b"closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_prefixed_with_their_big_endian_length() {
        assert_eq!(prefixed(b"abc"), vec![0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(prefixed(b""), vec![0, 0, 0, 0]);
        let big = vec![9u8; 300];
        let out = prefixed(&big);
        assert_eq!(&out[..4], &[0, 0, 1, 44]);
        assert_eq!(out.len(), 304);
    }
}
