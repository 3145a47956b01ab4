//! One client's session, whatever carries its lines (stdin/stdout or a WebSocket): each request
//! runs in its own task against the [`Hub`], so a slow `send_message` never holds up
//! `get_login_status`; answers and events go out through the client's one output channel, so
//! lines never interleave and events keep their order.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::hub::{ClientTx, Hub};
use crate::rpc::{self, Incoming};

/// How long in-flight requests get to answer when a session ends.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The requests of one client.
pub struct Session {
    hub: Arc<Hub>,
    out: ClientTx,
    in_flight: JoinSet<()>,
}

impl Session {
    /// A session answering on `out`.
    pub fn new(hub: Arc<Hub>, out: ClientTx) -> Session {
        Session {
            hub,
            out,
            in_flight: JoinSet::new(),
        }
    }

    /// Handles one input line.
    pub fn line(&mut self, line: &str) {
        // Reap finished requests so the set does not grow with the session.
        while self.in_flight.try_join_next().is_some() {}
        match rpc::parse_line(line) {
            None => {}
            Some(Incoming::Invalid(answer)) => {
                let _ = self.out.send(answer);
            }
            Some(Incoming::Request {
                id,
                engine,
                method,
                params,
            }) => {
                let hub = self.hub.clone();
                let out = self.out.clone();
                self.in_flight.spawn(async move {
                    tracing::debug!(%engine, %method, "request");
                    let outcome = hub.call(&engine, &method, params).await;
                    let _ = out.send(rpc::answer_line(&id, &outcome));
                });
            }
            Some(Incoming::Notification {
                engine,
                method,
                params,
            }) => {
                let hub = self.hub.clone();
                self.in_flight.spawn(async move {
                    if let Err(e) = hub.call(&engine, &method, params).await {
                        tracing::warn!(%engine, %method, code = e.code, desc = %e.desc, "notification failed");
                    }
                });
            }
        }
    }

    /// Answers a frame that is not UTF-8 (as malformed JSON: 6027, null id).
    pub fn not_utf8(&mut self) {
        let err = chime_engine::ApiError::new(
            chime_proto::codes::ERR_INVALID_JSON,
            "malformed JSON: the frame is not UTF-8",
        );
        let _ = self
            .out
            .send(rpc::error_line(&serde_json::Value::Null, &err));
    }

    /// Lets the requests still running answer (bounded by [`DRAIN_TIMEOUT`]).
    pub async fn drain(mut self) {
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while self.in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("requests still running {DRAIN_TIMEOUT:?} after the session ended");
            self.in_flight.abort_all();
        }
    }
}
