//! The server's HTTP endpoint (`--http-listen`): one axum [`Router`] per area, merged here, so
//! that each area (the REST admin API now, the file store later) owns its routes and nothing
//! else. The endpoint stops with the server: it follows [`crate::Shared::stopping`].

pub mod admin;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::Shared;
use crate::error::ServerError;

/// Largest request body accepted (a REST call carries at most a few messages).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Every area's routes, merged.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(admin::router(Arc::clone(&shared)))
        .merge(crate::files::routes::router(Arc::clone(&shared)))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// A running HTTP endpoint.
pub struct HttpEndpoint {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HttpEndpoint {
    /// The base URL, e.g. `http://127.0.0.1:41235`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits (bounded) for the endpoint to finish after the server's stop signal.
    pub async fn shutdown(self) {
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(3), self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

/// Binds `listen` and serves [`router`] until the server stops.
pub async fn start(shared: Arc<Shared>, listen: SocketAddr) -> Result<HttpEndpoint, ServerError> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let mut stopping = shared.stopping.clone();
    let app = router(shared);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopping.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!("http endpoint failed: {e}");
        }
    });
    tracing::info!(%addr, "http listening");
    Ok(HttpEndpoint { addr, task })
}
