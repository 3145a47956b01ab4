//! The QUIC transport plugin (`CHIME_PLUGIN_KIND_TRANSPORT`, name `quic`): carries the engine's
//! frames to `chime-server`'s QUIC endpoint over one bidirectional stream of a quinn connection,
//! TLS 1.3 with a pinned certificate fingerprint or a CA file.
//!
//! Why QUIC: on a lossy path a TCP connection stalls every frame behind a lost segment and backs
//! off hard; QUIC recovers loss per packet with its own timers and keeps the connection through
//! address changes. docs/performance.md measures what that buys at 0–50% loss.
//!
//! Shape: the instance owns a small tokio runtime (one worker thread) on which every connection's
//! driver, reader and writer run, so the host's call threads only block for the handshake in
//! `connect` and never in `send`. Configuration: [`config`]; TLS: [`tls`]; one connection:
//! [`connection`]. `docs/plugins.md` documents the config keys.

pub mod config;
pub mod connection;
pub mod tls;

use chime_plugin_api::{PluginCallError, Transport, TransportEvents, export_transport};

use crate::config::{QuicConfig, Target};
use crate::connection::QuicConnection;

/// The plugin instance: its configuration and its runtime.
pub struct QuicTransport {
    config: QuicConfig,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Transport for QuicTransport {
    type Connection = QuicConnection;

    fn create(config_json: &str) -> Result<Self, PluginCallError> {
        let config =
            QuicConfig::parse(config_json).map_err(|e| PluginCallError::invalid(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("chime-quic")
            .enable_all()
            .build()
            .map_err(|e| PluginCallError::failed(format!("runtime: {e}")))?;
        Ok(Self {
            config,
            runtime: Some(runtime),
        })
    }

    fn connect(
        &self,
        url: &str,
        options_json: &str,
        events: TransportEvents,
    ) -> Result<QuicConnection, PluginCallError> {
        let target = Target::parse(url).map_err(|e| PluginCallError::invalid(e.to_string()))?;
        let config = self
            .config
            .merged(options_json)
            .map_err(|e| PluginCallError::invalid(e.to_string()))?;
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| PluginCallError::failed("transport is shutting down"))?;
        connection::open(runtime.handle(), &target, &config, events)
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        // `destroy` runs on a host call thread (never inside a runtime), after every connection
        // closed: stop the runtime without waiting long for a task stuck in the network.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        }
    }
}

export_transport!(QuicTransport, "quic");
