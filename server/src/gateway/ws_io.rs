//! The WebSocket transport's socket: reads for tungstenite, writes of our own frames.
//!
//! Why it exists: an answer or a push used to reach the socket through the connection's writer
//! task, which the commit pipeline's thread had to wake (a futex wake-up, then a tokio worker
//! scheduled onto an idle core: 50–70 µs of W1's one-way latency on this kind of virtual
//! machine). Here the server side of a WebSocket is split so that whoever queues a frame may also
//! write it ([`crate::outbound::DirectWrite`]):
//! - tungstenite does the handshake and reads the client's messages over [`WsSocket`]; once the
//!   session starts ([`Socket::start`]), the bytes tungstenite writes itself (pong and close
//!   replies) are kept in the socket's `carry` for the writer, never written in between frames;
//! - server-to-client frames are encoded here (a binary frame is `0x82`, the length, the payload:
//!   a server never masks) and written either by the queueing thread at the end of its
//!   [`crate::outbound::defer`] scope, when the writer task is idle, in one non-blocking write
//!   ([`Direct`]), or by the writer task ([`write_frames`]). The outbound queue's `busy` state
//!   decides which of the two owns the socket; a frame the socket took only in part is finished
//!   by the writer (from `carry`) before anything else.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::outbound::{self, DirectWrite, Kicker, Outbound};

/// A direct write encodes at most this much of the queue into one system call.
const DIRECT_MAX: usize = 64 * 1024;
/// The writer task writes in chunks of at most this size.
const CHUNK: usize = 64 * 1024;
/// Bytes tungstenite may leave for the writer (control replies) before the connection fails:
/// a client that keeps pinging without reading cannot grow the server's memory.
const CARRY_MAX: usize = 64 * 1024;
/// A close frame without a status.
const CLOSE_FRAME: [u8; 2] = [0x88, 0x00];

/// One connection's socket, shared by its reader (tungstenite), its writer task and the direct
/// writes.
#[derive(Debug)]
pub struct Socket {
    tcp: TcpStream,
    /// Bytes the writer must write before any frame: the rest of a frame a direct write could
    /// only write in part, then tungstenite's control replies.
    carry: Mutex<Vec<u8>>,
    /// Set when the session starts: from then on tungstenite's writes go to `carry`.
    kicker: OnceLock<Kicker>,
}

impl Socket {
    /// Wraps an accepted connection.
    pub fn new(tcp: TcpStream) -> Arc<Self> {
        Arc::new(Self {
            tcp,
            carry: Mutex::new(Vec::new()),
            kicker: OnceLock::new(),
        })
    }

    /// After the handshake: the writer task of `rx` writes the socket from now on (and every
    /// thread queueing inside a [`crate::outbound::defer`] scope, when that writer is idle).
    pub fn start(self: &Arc<Self>, rx: &outbound::Receiver) {
        let _ = self.kicker.set(rx.kicker());
        rx.set_direct(Box::new(Direct(Arc::clone(self))));
    }

    fn carry(&self) -> MutexGuard<'_, Vec<u8>> {
        // Each critical section leaves the bytes consistent: a poisoned lock is usable.
        self.carry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Appends a server-to-client binary frame of `payload` to `out`.
fn encode_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = payload.len();
    out.push(0x82);
    if len < 126 {
        out.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// The direct write of a connection's queue ([`crate::outbound::DirectWrite`]).
#[derive(Debug)]
struct Direct(Arc<Socket>);

impl DirectWrite for Direct {
    fn write_now(&self, items: &mut VecDeque<Outbound>) -> bool {
        let mut carry = self.0.carry();
        if !carry.is_empty() {
            // The writer's bytes go first.
            return true;
        }
        let mut buf = Vec::new();
        let mut frames = 0;
        for out in items.iter() {
            match out {
                Outbound::Frame(b) => encode_frame(&mut buf, b),
                // Closing is the writer's.
                Outbound::Close => break,
            }
            frames += 1;
            if buf.len() >= DIRECT_MAX {
                break;
            }
        }
        if frames == 0 {
            return true;
        }
        match self.0.tcp.try_write(&buf) {
            Ok(n) => {
                items.drain(..frames);
                if n < buf.len() {
                    carry.extend_from_slice(&buf[n..]);
                    return true;
                }
                !items.is_empty()
            }
            // Not writable now, or failed: the writer waits for the socket or meets the error.
            Err(_) => true,
        }
    }
}

/// Writes all of `buf` (waiting for the socket as needed).
async fn write_all(tcp: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        tcp.writable().await?;
        match tcp.try_write(&buf[..buf.len().min(CHUNK)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The writer task: each round writes `carry`, then every frame queued, in one buffer; on
/// `Close` writes a close frame and ends. Holds no buffer while idle.
pub async fn write_frames(socket: Arc<Socket>, mut rx: outbound::Receiver) {
    loop {
        let batch = rx.recv().await;
        let mut buf = std::mem::take(&mut *socket.carry());
        let mut closing = false;
        for out in batch.drain(..) {
            match out {
                Outbound::Frame(b) => encode_frame(&mut buf, &b),
                Outbound::Close => {
                    buf.extend_from_slice(&CLOSE_FRAME);
                    closing = true;
                    break;
                }
            }
        }
        if write_all(&socket.tcp, &buf).await.is_err() || closing {
            return;
        }
    }
}

/// The socket as tungstenite sees it: reads from the connection; writes go to the connection
/// during the handshake and to the writer ([`Socket::start`]) after it.
#[derive(Debug)]
pub struct WsSocket(pub Arc<Socket>);

impl AsyncRead for WsSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.tcp.poll_read_ready(cx))?;
            match self.0.tcp.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for WsSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(kicker) = self.0.kicker.get() {
            {
                let mut carry = self.0.carry();
                if carry.len() + data.len() > CARRY_MAX {
                    return Poll::Ready(Err(io::Error::other("control replies not read")));
                }
                carry.extend_from_slice(data);
            }
            kicker.kick();
            return Poll::Ready(Ok(data.len()));
        }
        loop {
            ready!(self.0.tcp.poll_write_ready(cx))?;
            match self.0.tcp.try_write(data) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The writer ends the stream (a close frame); the socket closes when the last holder
        // drops it.
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn encoded(frames: &[Bytes]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            encode_frame(&mut out, f);
        }
        out
    }
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    type ServerSide = (
        tokio_tungstenite::WebSocketStream<WsSocket>,
        crate::registry::ConnTx,
        tokio::task::JoinHandle<()>,
    );

    /// The server side of one test connection: the handshake over [`Socket`], the session
    /// started, its writer task running.
    async fn accept(listener: &tokio::net::TcpListener) -> ServerSide {
        let (tcp, _) = listener.accept().await.unwrap();
        let socket = Socket::new(tcp);
        let ws = tokio_tungstenite::accept_async(WsSocket(Arc::clone(&socket)))
            .await
            .unwrap();
        let (conn, rx) = crate::registry::ConnTx::new(1, 64);
        socket.start(&rx);
        let writer = tokio::spawn(write_frames(Arc::clone(&socket), rx));
        (ws, conn, writer)
    }

    /// A real tungstenite client of the test listener at `addr`.
    async fn connect(
        addr: std::net::SocketAddr,
    ) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp)
            .await
            .unwrap();
        client
    }

    #[test]
    fn frame_lengths_use_the_three_encodings() {
        assert_eq!(
            encoded(&[Bytes::from_static(b"hi")]),
            vec![0x82, 2, b'h', b'i']
        );
        let mid = encoded(&[Bytes::from(vec![7u8; 300])]);
        assert_eq!(&mid[..4], &[0x82, 126, 1, 44]);
        assert_eq!(mid.len(), 4 + 300);
        let big = encoded(&[Bytes::from(vec![7u8; 70_000])]);
        assert_eq!(&big[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(big.len(), 10 + 70_000);
    }

    /// A real client over loopback: frames written directly (inside a `defer` scope, writer
    /// idle) and by the writer task (outside one) arrive in order, decoded by tungstenite.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_and_writer_frames_reach_a_client_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { accept(&listener).await });
        let mut client = connect(addr).await;
        let (ws, conn, writer) = server.await.unwrap();
        // From a plain thread, as the commit pipeline does: three frames in one scope, then
        // one without a scope (the writer task's), then a large one in a scope.
        let sender = conn.clone();
        std::thread::spawn(move || {
            {
                let _scope = outbound::defer();
                for f in [&b"a"[..], b"bb", b"ccc"] {
                    assert!(sender.send(Bytes::copy_from_slice(f)));
                }
            }
            assert!(sender.send(Bytes::from_static(b"dddd")));
            let _scope = outbound::defer();
            assert!(sender.send(Bytes::from(vec![9u8; 200_000])));
        })
        .join()
        .unwrap();
        let mut got = Vec::new();
        while got.len() < 5 {
            match tokio::time::timeout(std::time::Duration::from_secs(10), client.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => got.push(b.to_vec()),
                other => panic!("unexpected: {other:?}"),
            }
        }
        assert_eq!(
            got[..4],
            [
                b"a".to_vec(),
                b"bb".to_vec(),
                b"ccc".to_vec(),
                b"dddd".to_vec()
            ]
        );
        assert_eq!(got[4], vec![9u8; 200_000]);
        // A close from the writer ends the client's stream.
        conn.close();
        let end = tokio::time::timeout(std::time::Duration::from_secs(10), client.next()).await;
        assert!(matches!(end, Ok(Some(Ok(Message::Close(_))))), "{end:?}");
        drop(ws);
        writer.await.unwrap();
    }

    /// The client's ping is answered (tungstenite's pong goes through the writer) while the
    /// server's frames keep flowing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_ping_is_answered_through_the_writer() {
        use futures_util::SinkExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut ws, conn, writer) = accept(&listener).await;
            // Reading the ping makes tungstenite queue the pong (written on the next read);
            // the binary message follows it.
            loop {
                match ws.next().await {
                    Some(Ok(Message::Ping(_))) => continue,
                    Some(Ok(Message::Binary(b))) => break assert_eq!(&b[..], b"x"),
                    other => panic!("unexpected: {other:?}"),
                }
            }
            conn.send(Bytes::from_static(b"after"));
            (ws, conn, writer)
        });
        let mut client = connect(addr).await;
        client
            .send(Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
        client
            .send(Message::Binary(Bytes::from_static(b"x")))
            .await
            .unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            match tokio::time::timeout(std::time::Duration::from_secs(10), client.next()).await {
                Ok(Some(Ok(m))) => seen.push(m),
                other => panic!("unexpected: {other:?}"),
            }
        }
        assert!(
            seen.contains(&Message::Pong(Bytes::from_static(b"p"))),
            "{seen:?}"
        );
        assert!(
            seen.contains(&Message::Binary(Bytes::from_static(b"after"))),
            "{seen:?}"
        );
        let (_ws, conn, writer) = server.await.unwrap();
        conn.close();
        writer.await.unwrap();
    }
}
