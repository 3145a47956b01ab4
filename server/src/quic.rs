//! The QUIC endpoint: the client protocol over QUIC (quinn, TLS 1.3, ALPN `chime/1`), next to
//! the WebSocket endpoint, for the engine's QUIC transport plugin (`plugins/quic-transport`).
//!
//! Each QUIC connection carries one bidirectional stream, opened by the client; on it every frame
//! is an encoded `Frame` prefixed with its length as a big-endian `u32` (docs/protocol.md). The
//! stream feeds the same [`gateway::session`] as a WebSocket connection, so login, requests,
//! pushes, the idle timeout and the multi-device policy are one piece of code for both.
//!
//! Certificate: the configured PEM chain and key, or else a self-signed certificate generated
//! once and kept in `<data_dir>/quic/` (`cert.pem`, `key.pem`), so that its SHA-256 fingerprint,
//! which clients pin, survives restarts. The fingerprint is written to `<data_dir>/quic/cert.sha256`
//! and printed in the ready line (docs/operations.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{IdleTimeout, RecvStream, SendStream, TransportConfig, VarInt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::Shared;
use crate::error::ServerError;
use crate::gateway::{self, FrameSource, Inbound};
use crate::outbound;
use crate::registry::{ConnTx, Outbound};

/// The ALPN protocol id of the Chime protocol over QUIC.
pub const ALPN: &[u8] = b"chime/1";

/// A client has this long to finish the handshake, and then as long again to open its stream
/// (long: on a path that loses half its datagrams each takes several retransmission rounds).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// QUIC idle timeout (the session's own heartbeat timeout usually ends a dead session first).
const QUIC_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a closing connection waits for the client to acknowledge what was sent.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Files of a configured certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// PEM file with the certificate chain, leaf first.
    pub cert_chain: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
}

/// The QUIC endpoint's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicSettings {
    /// UDP address (port 0 picks a free one).
    pub listen: SocketAddr,
    /// A configured certificate; `None` = the self-signed one of the data dir.
    pub cert: Option<CertFiles>,
}

/// A running QUIC endpoint.
pub struct QuicEndpoint {
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    fingerprint: String,
    accept: JoinHandle<()>,
}

impl QuicEndpoint {
    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL clients connect to, e.g. `quic://127.0.0.1:41235`.
    pub fn url(&self) -> String {
        format!("quic://{}", self.addr)
    }

    /// Lowercase hex SHA-256 of the certificate (DER) the endpoint presents: what clients pin.
    pub fn cert_sha256(&self) -> &str {
        &self.fingerprint
    }

    /// Stops accepting and closes every connection (their sessions see the close).
    pub async fn shutdown(self) {
        self.endpoint.close(VarInt::from_u32(0), b"server stopping");
        let _ = self.accept.await;
        let _ = tokio::time::timeout(CLOSE_LINGER, self.endpoint.wait_idle()).await;
    }
}

/// Lowercase hex SHA-256 of a DER certificate.
pub fn cert_sha256(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The certificate chain and key to present.
fn load_identity(
    settings: &QuicSettings,
    data_dir: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ServerError> {
    let files = match &settings.cert {
        Some(files) => files.clone(),
        None => self_signed(&data_dir.join("quic"))?,
    };
    let bad = |path: &Path, e: String| ServerError::Config(format!("{}: {e}", path.display()));
    let chain = CertificateDer::pem_file_iter(&files.cert_chain)
        .map_err(|e| bad(&files.cert_chain, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&files.cert_chain, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(&files.cert_chain, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.private_key)
        .map_err(|e| bad(&files.private_key, e.to_string()))?;
    Ok((chain, key))
}

/// The self-signed certificate of `dir`, generated on first use.
fn self_signed(dir: &Path) -> Result<CertFiles, ServerError> {
    let files = CertFiles {
        cert_chain: dir.join("cert.pem"),
        private_key: dir.join("key.pem"),
    };
    if files.cert_chain.is_file() && files.private_key.is_file() {
        return Ok(files);
    }
    std::fs::create_dir_all(dir)?;
    let tls = |e: rcgen::Error| ServerError::Config(format!("self-signed certificate: {e}"));
    let key = rcgen::KeyPair::generate().map_err(tls)?;
    let mut params = rcgen::CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .map_err(tls)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "chime-server");
    // Far enough that a pinned deployment never meets its expiry.
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    let cert = params.self_signed(&key).map_err(tls)?;
    write_private(&files.private_key, key.serialize_pem().as_bytes())?;
    std::fs::write(&files.cert_chain, cert.pem())?;
    tracing::info!(dir = %dir.display(), "generated a self-signed QUIC certificate");
    Ok(files)
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

/// Binds the endpoint and starts accepting. Must be called inside a tokio runtime.
pub fn start(
    shared: Arc<Shared>,
    settings: &QuicSettings,
    data_dir: &Path,
) -> Result<QuicEndpoint, ServerError> {
    let (chain, key) = load_identity(settings, data_dir)?;
    let fingerprint = cert_sha256(chain[0].as_ref());
    let fingerprint_file = data_dir.join("quic").join("cert.sha256");
    if let Some(dir) = fingerprint_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&fingerprint_file, format!("{fingerprint}\n"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_error = |e: rustls::Error| ServerError::Config(format!("quic tls: {e}"));
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_error)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(tls)
        .map_err(|e| ServerError::Config(format!("quic tls: {e}")))?;
    let mut transport = TransportConfig::default();
    transport.max_concurrent_uni_streams(VarInt::from_u32(0));
    transport.max_concurrent_bidi_streams(VarInt::from_u32(1));
    transport.max_idle_timeout(Some(
        IdleTimeout::try_from(QUIC_IDLE_TIMEOUT)
            .map_err(|e| ServerError::Config(format!("quic idle timeout: {e}")))?,
    ));
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::server(config, settings.listen)?;
    let addr = endpoint.local_addr()?;
    let accepting = endpoint.clone();
    let accept = tokio::spawn(async move {
        let mut stopping = shared.stopping.clone();
        loop {
            let incoming = tokio::select! {
                _ = stopping.wait_for(|s| *s) => break,
                incoming = accepting.accept() => incoming,
            };
            let Some(incoming) = incoming else { break };
            tokio::spawn(serve(Arc::clone(&shared), incoming));
        }
    });
    tracing::info!(%addr, sha256 = %fingerprint, "QUIC endpoint listening");
    Ok(QuicEndpoint {
        endpoint,
        addr,
        fingerprint,
        accept,
    })
}

/// A QUIC stream's reading half: length-prefixed frames.
struct QuicSource {
    recv: RecvStream,
    limit: usize,
}

impl FrameSource for QuicSource {
    async fn next_frame(&mut self) -> Inbound {
        let mut length = [0u8; 4];
        match self.recv.read_exact(&mut length).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => return Inbound::Closed,
            Err(quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(
                quinn::ConnectionError::ApplicationClosed(_),
            ))) => return Inbound::Closed,
            Err(e) => return Inbound::Failed(e.to_string()),
        }
        let size = u32::from_be_bytes(length) as usize;
        if size > self.limit {
            return Inbound::TooLarge(format!("frame of {size} bytes over {}", self.limit));
        }
        let mut frame = vec![0u8; size];
        match self.recv.read_exact(&mut frame).await {
            Ok(()) => Inbound::Frame(Bytes::from(frame)),
            Err(e) => Inbound::Failed(e.to_string()),
        }
    }
}

/// Serves one incoming QUIC connection until its session ends.
async fn serve(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let peer = incoming.remote_address();
    let connection = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "quic handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "quic handshake timed out");
            return;
        }
    };
    let (send, recv) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connection.accept_bi()).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "quic connection closed before its stream: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "quic client opened no stream in time");
            connection.close(VarInt::from_u32(0), b"no stream");
            return;
        }
    };
    let (conn, rx) = ConnTx::new(
        shared.registry.next_conn_id(),
        shared.tunables.outbound_queue.max(16),
    );
    let writer = tokio::spawn(write_frames(send, rx));
    let source = QuicSource {
        recv,
        limit: shared.tunables.max_frame_bytes,
    };
    gateway::session(shared, conn, source).await;
    let abort = writer.abort_handle();
    if tokio::time::timeout(CLOSE_LINGER * 2, writer)
        .await
        .is_err()
    {
        abort.abort();
    }
    connection.close(VarInt::from_u32(0), b"session ended");
}

/// Writes queued frames length-prefixed, batching what is queued into one write; on `Close`
/// finishes the stream and waits (bounded) for the client to have received everything.
async fn write_frames(mut send: SendStream, mut rx: outbound::Receiver) {
    let mut batch = Vec::new();
    loop {
        let mut closing = false;
        for out in rx.recv().await.drain(..) {
            match out {
                Outbound::Frame(frame) => {
                    batch.extend_from_slice(&(frame.len() as u32).to_be_bytes());
                    batch.extend_from_slice(&frame);
                }
                Outbound::Close => {
                    closing = true;
                    break;
                }
            }
        }
        if !batch.is_empty() && send.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
        if closing {
            break;
        }
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(CLOSE_LINGER, send.stopped()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_signed_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let settings = QuicSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert: None,
        };
        let (first, _) = load_identity(&settings, dir.path()).unwrap();
        let (again, _) = load_identity(&settings, dir.path()).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(
            cert_sha256(first[0].as_ref()),
            cert_sha256(again[0].as_ref())
        );
        assert_eq!(cert_sha256(first[0].as_ref()).len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("quic/key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn configured_files_are_used_and_bad_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let made = self_signed(&dir.path().join("made")).unwrap();
        let settings = QuicSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert: Some(made.clone()),
        };
        let (chain, _) = load_identity(&settings, &dir.path().join("other")).unwrap();
        assert_eq!(chain.len(), 1);
        assert!(!dir.path().join("other/quic/cert.pem").exists());
        let missing = QuicSettings {
            cert: Some(CertFiles {
                cert_chain: dir.path().join("nope.pem"),
                private_key: made.private_key,
            }),
            ..settings
        };
        let Err(ServerError::Config(e)) = load_identity(&missing, dir.path()) else {
            panic!("a missing certificate file must be refused");
        };
        assert!(
            e.starts_with(&format!("{}: ", dir.path().join("nope.pem").display())),
            "{e}"
        );
    }

    #[test]
    fn fingerprints_are_lowercase_hex_sha256() {
        assert_eq!(
            cert_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
