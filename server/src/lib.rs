#![doc = include_str!("../README.md")]

pub mod annotations;
pub mod barrier;
pub mod change_log;
pub mod commit;
pub mod community;
pub mod config;
pub mod conversations;
pub mod error;
pub mod files;
pub mod followups;
pub mod gateway;
pub mod group_admin;
pub mod group_apply;
pub mod group_kv;
pub mod group_reads;
pub mod group_tips;
pub mod groups;
pub mod http;
pub mod idem_filter;
pub mod keys;
pub mod lifecycle;
pub mod outbound;
pub mod pins;
pub mod push;
pub mod queries;
pub mod quic;
pub mod read_cache;
pub mod receipts;
pub mod registry;
pub mod relations;
pub mod search;
pub mod search_index;
pub mod signaling;
pub mod store;
pub mod txn;
pub mod usersig;
pub mod wal;
pub mod webhooks;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use config::{MultiDevicePolicy, ServerConfig, Tunables};
pub use error::{ApiError, ServerError, StoreError};

use crate::commit::{Command, Msg, Op, Reply};
use crate::registry::Registry;
use crate::store::{SledStore, Store};

/// How often expired messages are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// State shared by every connection.
pub struct Shared {
    /// The store (reads; writes go through the commit task). Each read waits at the read
    /// barrier ([`barrier`]), so it sees every write acknowledged or pushed before it.
    pub store: Arc<dyn Store>,
    /// The same store, for a read of many steps: [`barrier::Gated::settled`] waits once.
    pub reads: Arc<barrier::Gated>,
    /// Online sessions.
    pub registry: Arc<Registry>,
    /// Tunables.
    pub tunables: Arc<Tunables>,
    /// SDKAppID → key.
    pub apps: HashMap<u64, String>,
    /// The commit task's queue.
    pub commit: mpsc::Sender<Msg>,
    /// Becomes true when the server stops: every connection closes.
    pub stopping: watch::Receiver<bool>,
    /// The app backend's callbacks (`[webhook]` in the config file), if configured.
    pub webhooks: Option<Arc<webhooks::Webhooks>>,
    /// Offline push: which connections are in the background (docs/push.md).
    pub push: push::Pusher,
    /// The file store (docs/files.md): upload tickets, download URLs, its HTTP routes.
    pub files: Arc<files::Files>,
    /// The lane of the store reads that follow a login or a session's end.
    pub followups: followups::Followups,
}

/// A running server; [`RunningServer::shutdown`] stops it gracefully.
pub struct RunningServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept: JoinHandle<()>,
    commit: mpsc::Sender<Msg>,
    commit_thread: std::thread::JoinHandle<()>,
    shared: Arc<Shared>,
    quic: Option<quic::QuicEndpoint>,
    http: Option<http::HttpEndpoint>,
}

impl RunningServer {
    /// The WebSocket endpoint, e.g. `ws://127.0.0.1:41234/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.addr, gateway::WS_PATH)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The QUIC endpoint, when `--quic-listen` enabled one.
    pub fn quic(&self) -> Option<&quic::QuicEndpoint> {
        self.quic.as_ref()
    }

    /// The HTTP endpoint (REST admin API), when `--http-listen` enabled one.
    pub fn http(&self) -> Option<&http::HttpEndpoint> {
        self.http.as_ref()
    }

    /// Number of users with a live session.
    pub fn online_users(&self) -> usize {
        self.shared.registry.online_users()
    }

    /// Stops accepting, closes the connections, lets the commit task finish what is queued,
    /// flushes the store and returns once the store is closed (so the data dir can be reopened).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.accept.await;
        if let Some(quic) = self.quic {
            quic.shutdown().await;
        }
        if let Some(http) = self.http {
            http.shutdown().await;
        }
        let _ = self.commit.send(Msg::Shutdown).await;
        let thread = self.commit_thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        // Wait (bounded) for connection tasks and in-flight reads to let go of the store.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.shared) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if Arc::strong_count(&self.shared) > 1 {
            tracing::warn!("connections still hold the store after 5 s");
        }
        drop(self.shared);
        tracing::info!("server stopped");
    }
}

/// Starts a server: opens the store in `config.data_dir`, binds `config.listen` and serves until
/// [`RunningServer::shutdown`]. Must be called inside a tokio runtime.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    if config.apps.is_empty() {
        return Err(ServerError::Config(
            "at least one --app ID:KEY is required".into(),
        ));
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let tunables = Arc::new(config.tunables);
    let store: Arc<dyn Store> = Arc::new(SledStore::open(
        &config.data_dir.join("store"),
        tunables.store_cache_bytes,
    )?);
    let (wal, replay) = wal::Wal::open(&config.data_dir)?;
    let mut wal = wal;
    if !replay.is_empty() {
        tracing::info!(batches = replay.len(), "replaying the write-ahead log");
        for batch in &replay {
            let ops: Vec<_> = batch
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref()))
                .collect();
            store.apply(&ops)?;
        }
    }
    store.flush()?;
    wal.reset()?;
    let registry = Arc::new(Registry::default());
    let webhooks = match tunables.webhook.clone() {
        Some(cfg) => Some(Arc::new(webhooks::Webhooks::new(cfg, config.apps.clone())?)),
        None => None,
    };
    let (push_hook, push_jobs) = push::channel(tunables.push.as_ref()).unzip();
    let (commit, commit_thread, barrier) = commit::spawn(
        Arc::clone(&store),
        wal,
        Arc::clone(&registry),
        Arc::clone(&tunables),
        webhooks.clone(),
        push_hook,
        65_536,
    )?;
    let reads = Arc::new(barrier::Gated::new(store, barrier));
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let files = Arc::new(files::Files::open(
        tunables.files.clone(),
        tunables.http_public_url.clone(),
        &config.data_dir,
    )?);
    let shared = Arc::new(Shared {
        followups: followups::Followups::start()?,
        push: push::Pusher::default(),
        webhooks,
        files,
        stopping: stopped.clone(),
        store: Arc::clone(&reads) as Arc<dyn Store>,
        reads,
        registry,
        tunables,
        apps: config.apps,
        commit: commit.clone(),
    });
    let quic = match &config.quic {
        Some(settings) => Some(quic::start(
            Arc::clone(&shared),
            settings,
            &config.data_dir,
        )?),
        None => None,
    };
    let http = match config.http_listen {
        Some(listen) => Some(http::start(Arc::clone(&shared), listen).await?),
        None => None,
    };
    if let Some(http) = &http {
        shared.files.set_http_url(http.url());
    }
    files::sweeper::spawn(Arc::clone(&shared));
    if let Some(jobs) = push_jobs {
        push::start(&shared, jobs)?;
    }
    signaling::spawn_timer(Arc::clone(&shared));
    groups::recycle::spawn(Arc::clone(&shared));
    search_index::spawn_flusher(Arc::clone(&shared));
    let accept_shared = Arc::clone(&shared);
    let accept = tokio::spawn(async move {
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = prune.tick() => spawn_prune(Arc::clone(&accept_shared)),
                r = listener.accept() => match r {
                    Ok((stream, peer)) => {
                        tracing::trace!(%peer, "accepted");
                        tokio::spawn(gateway::serve(Arc::clone(&accept_shared), stream));
                    }
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    });
    tracing::info!(%addr, "listening");
    Ok(RunningServer {
        addr,
        stop,
        accept,
        commit,
        commit_thread,
        shared,
        quic,
        http,
    })
}

/// Finds messages past the retention off the commit thread, then has it delete them.
fn spawn_prune(shared: Arc<Shared>) {
    tokio::spawn(async move {
        let scan_shared = Arc::clone(&shared);
        let found = tokio::task::spawn_blocking(move || {
            queries::expired_message_keys(
                scan_shared.store.as_ref(),
                scan_shared.tunables.retention_ms(),
                100_000,
            )
        })
        .await;
        match found {
            Ok(Ok(keys)) if !keys.is_empty() => {
                tracing::info!(count = keys.len(), "pruning expired messages");
                let _ = shared
                    .commit
                    .send(Msg::Cmd(Command {
                        app: 0,
                        user: String::new(),
                        op: Op::Prune(keys),
                        reply: Reply::None,
                    }))
                    .await;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("prune scan failed: {e}"),
            Err(e) => tracing::warn!("prune task failed: {e}"),
        }
    });
}
