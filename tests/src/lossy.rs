//! A lossy UDP relay for the QUIC tests and benchmark: it sits between engines and the server's
//! QUIC endpoint on loopback and drops a given share of datagrams in both directions, each
//! direction independently, after delaying every surviving datagram by a fixed time.
//!
//! Why in user space: the kernel here has no `netem` queueing discipline (a network namespace
//! with `tc qdisc ... netem loss` answers "qdisc kind is unknown"), and a relay on loopback needs
//! no privileges. The loss draw comes from a seeded generator, so a run is reproducible for a
//! given seed and arrival order.
//!
//! Everything is bounded: at most [`MAX_CLIENTS`] client addresses get an upstream socket, and at
//! most [`MAX_IN_FLIGHT`] datagrams wait in a delay line (beyond that they are dropped, and
//! counted as dropped).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Most client addresses the relay serves at once.
pub const MAX_CLIENTS: usize = 64;
/// Most datagrams waiting in one delay line.
pub const MAX_IN_FLIGHT: usize = 8192;
/// Largest datagram relayed (QUIC datagrams are far smaller).
const MAX_DATAGRAM: usize = 65_535;

/// What the relay does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Impairment {
    /// Share of datagrams dropped, in percent (0..=100), each direction.
    pub loss_percent: u32,
    /// Added one-way delay of every datagram that is not dropped.
    pub delay: Duration,
}

impl Impairment {
    /// No loss, no delay.
    pub const NONE: Impairment = Impairment {
        loss_percent: 0,
        delay: Duration::ZERO,
    };

    /// `loss_percent` loss and `delay_ms` one-way delay.
    pub fn new(loss_percent: u32, delay_ms: u64) -> Impairment {
        Impairment {
            loss_percent: loss_percent.min(100),
            delay: Duration::from_millis(delay_ms),
        }
    }
}

/// Datagrams seen by the relay so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Client → server datagrams forwarded.
    pub up_forwarded: u64,
    /// Client → server datagrams dropped.
    pub up_dropped: u64,
    /// Server → client datagrams forwarded.
    pub down_forwarded: u64,
    /// Server → client datagrams dropped.
    pub down_dropped: u64,
}

/// SplitMix64: a tiny seeded generator, enough for loss draws.
#[derive(Debug)]
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `percent`/100.
    fn hits(&mut self, percent: u32) -> bool {
        percent > 0 && (self.next() % 100) < u64::from(percent)
    }
}

struct State {
    impairment: Mutex<Impairment>,
    draw: Mutex<Draw>,
    up_forwarded: AtomicU64,
    up_dropped: AtomicU64,
    down_forwarded: AtomicU64,
    down_dropped: AtomicU64,
}

impl State {
    /// Decides the fate of one datagram: `None` = dropped, else when to deliver it.
    fn admit(&self, up: bool) -> Option<Instant> {
        let impairment = *self.impairment.lock().unwrap_or_else(|p| p.into_inner());
        let dropped = self
            .draw
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .hits(impairment.loss_percent);
        let (forwarded, dropped_count) = if up {
            (&self.up_forwarded, &self.up_dropped)
        } else {
            (&self.down_forwarded, &self.down_dropped)
        };
        if dropped {
            dropped_count.fetch_add(1, Ordering::Relaxed);
            None
        } else {
            forwarded.fetch_add(1, Ordering::Relaxed);
            Some(Instant::now() + impairment.delay)
        }
    }

    fn count_overflow(&self, up: bool) {
        let (forwarded, dropped) = if up {
            (&self.up_forwarded, &self.up_dropped)
        } else {
            (&self.down_forwarded, &self.down_dropped)
        };
        forwarded.fetch_sub(1, Ordering::Relaxed);
        dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// One datagram waiting in a delay line.
struct Delayed {
    due: Instant,
    bytes: Vec<u8>,
    to: Option<SocketAddr>,
}

/// A delay line: datagrams leave in order, each at its due time (the delay is the same for all,
/// so arrival order is due order).
fn delay_line(socket: Arc<UdpSocket>) -> (mpsc::Sender<Delayed>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Delayed>(MAX_IN_FLIGHT);
    let task = tokio::spawn(async move {
        while let Some(d) = rx.recv().await {
            tokio::time::sleep_until(d.due).await;
            let _ = match d.to {
                Some(to) => socket.send_to(&d.bytes, to).await,
                None => socket.send(&d.bytes).await,
            };
        }
    });
    (tx, task)
}

/// A running relay; stops when dropped.
pub struct LossyRelay {
    addr: SocketAddr,
    state: Arc<State>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl LossyRelay {
    /// Starts a relay on 127.0.0.1 (free port) forwarding to `upstream` with `impairment`;
    /// `seed` fixes the loss draws.
    pub async fn start(upstream: SocketAddr, impairment: Impairment, seed: u64) -> LossyRelay {
        let front = Arc::new(
            UdpSocket::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("relay bind: {e}")),
        );
        let addr = front
            .local_addr()
            .unwrap_or_else(|e| panic!("relay addr: {e}"));
        let state = Arc::new(State {
            impairment: Mutex::new(impairment),
            draw: Mutex::new(Draw(seed)),
            up_forwarded: AtomicU64::new(0),
            up_dropped: AtomicU64::new(0),
            down_forwarded: AtomicU64::new(0),
            down_dropped: AtomicU64::new(0),
        });
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let (down_tx, down_task) = delay_line(Arc::clone(&front));
        let relay_state = Arc::clone(&state);
        let relay_tasks = Arc::clone(&tasks);
        let front_task = tokio::spawn(async move {
            let mut clients: HashMap<SocketAddr, mpsc::Sender<Delayed>> = HashMap::new();
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                let Ok((n, from)) = front.recv_from(&mut buf).await else {
                    break;
                };
                let Some(due) = relay_state.admit(true) else {
                    continue;
                };
                if !clients.contains_key(&from) {
                    if clients.len() >= MAX_CLIENTS {
                        relay_state.count_overflow(true);
                        continue;
                    }
                    let Some(up) = upstream_socket(upstream).await else {
                        relay_state.count_overflow(true);
                        continue;
                    };
                    let (up_tx, up_task) = delay_line(Arc::clone(&up));
                    let down_reader = tokio::spawn(read_down(
                        up,
                        from,
                        Arc::clone(&relay_state),
                        down_tx.clone(),
                    ));
                    if let Ok(mut t) = relay_tasks.lock() {
                        t.push(up_task);
                        t.push(down_reader);
                    }
                    clients.insert(from, up_tx);
                }
                let Some(up_tx) = clients.get(&from) else {
                    continue;
                };
                let delayed = Delayed {
                    due,
                    bytes: buf[..n].to_vec(),
                    to: None,
                };
                if up_tx.try_send(delayed).is_err() {
                    relay_state.count_overflow(true);
                }
            }
        });
        if let Ok(mut t) = tasks.lock() {
            t.push(front_task);
            t.push(down_task);
        }
        LossyRelay { addr, state, tasks }
    }

    /// The relay's address (what the client connects to).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `quic://127.0.0.1:PORT` of the relay.
    pub fn quic_url(&self) -> String {
        format!("quic://{}", self.addr)
    }

    /// Changes the impairment from now on.
    pub fn set(&self, impairment: Impairment) {
        *self
            .state
            .impairment
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = impairment;
    }

    /// Counts so far.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            up_forwarded: self.state.up_forwarded.load(Ordering::Relaxed),
            up_dropped: self.state.up_dropped.load(Ordering::Relaxed),
            down_forwarded: self.state.down_forwarded.load(Ordering::Relaxed),
            down_dropped: self.state.down_dropped.load(Ordering::Relaxed),
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

/// A socket connected to the server for one client.
async fn upstream_socket(upstream: SocketAddr) -> Option<Arc<UdpSocket>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    socket.connect(upstream).await.ok()?;
    Some(Arc::new(socket))
}

/// Server → client: reads the client's upstream socket, impairs, queues for the front socket.
async fn read_down(
    up: Arc<UdpSocket>,
    client: SocketAddr,
    state: Arc<State>,
    down: mpsc::Sender<Delayed>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while let Ok(n) = up.recv(&mut buf).await {
        let Some(due) = state.admit(false) else {
            continue;
        };
        let delayed = Delayed {
            due,
            bytes: buf[..n].to_vec(),
            to: Some(client),
        };
        if down.try_send(delayed).is_err() {
            state.count_overflow(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draw_drops_about_the_asked_share() {
        let mut draw = Draw(42);
        let dropped = (0..100_000).filter(|_| draw.hits(30)).count();
        assert!((29_000..31_000).contains(&dropped), "{dropped}");
        let mut draw = Draw(42);
        assert_eq!((0..1000).filter(|_| draw.hits(0)).count(), 0);
        assert_eq!((0..1000).filter(|_| draw.hits(100)).count(), 1000);
    }

    #[tokio::test]
    async fn datagrams_cross_both_ways_and_loss_is_counted() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let relay = LossyRelay::start(server_addr, Impairment::new(0, 5), 7).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"ping", relay.addr()).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), server.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"ping");
        server.send_to(b"pong", from).await.unwrap();
        let (n, back) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((&buf[..n], back), (&b"pong"[..], relay.addr()));
        relay.set(Impairment::new(100, 0));
        client.send_to(b"lost", relay.addr()).await.unwrap();
        let lost =
            tokio::time::timeout(Duration::from_millis(200), server.recv_from(&mut buf)).await;
        assert!(lost.is_err(), "a datagram crossed a 100% loss relay");
        assert_eq!(
            relay.stats(),
            RelayStats {
                up_forwarded: 1,
                up_dropped: 1,
                down_forwarded: 1,
                down_dropped: 0,
            }
        );
    }
}
