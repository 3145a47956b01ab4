//! The WebSocket transport (`--listen`): JSON-RPC 2.0, one JSON object per text frame, behind a
//! bearer token.
//!
//! The upgrade request must carry `Authorization: Bearer <token>` (compared in constant time);
//! without it the handshake is refused with 401 and no frame is ever read. Each connection is a
//! client of the [`Hub`] (answers to its own requests, every engine's events). Engines are
//! daemon-wide and outlive connections; they stop with the daemon (`stop`, i.e. SIGTERM).

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

use crate::hub::Hub;
use crate::session::Session;

/// Whether the request's `Authorization` header carries `Bearer <token>`.
pub fn authorized(authorization: Option<&str>, token: &str) -> bool {
    let Some(value) = authorization else {
        return false;
    };
    let Some(given) = value.strip_prefix("Bearer ") else {
        return false;
    };
    !token.is_empty() && bool::from(given.trim().as_bytes().ct_eq(token.as_bytes()))
}

fn refuse(status: StatusCode, body: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(body.to_owned()));
    *response.status_mut() = status;
    response
}

/// Serves WebSocket clients on `listener` until `stop` fires; then closes the connections, lets
/// their requests answer (bounded) and returns (the caller shuts the engines down).
pub async fn serve(
    hub: Arc<Hub>,
    listener: TcpListener,
    token: Arc<str>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        match accepted {
            Ok((stream, peer)) => {
                connections.spawn(connection(
                    hub.clone(),
                    stream,
                    peer,
                    token.clone(),
                    stop.clone(),
                ));
            }
            Err(e) => tracing::warn!("accept: {e}"),
        }
    }
    while connections.join_next().await.is_some() {}
}

async fn connection(
    hub: Arc<Hub>,
    stream: TcpStream,
    peer: SocketAddr,
    token: Arc<str>,
    mut stop: watch::Receiver<bool>,
) {
    // The closure's shape (and its large error type) is tungstenite's handshake callback.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, response: Response| {
        let header = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if authorized(header, &token) {
            Ok(response)
        } else {
            Err(refuse(
                StatusCode::UNAUTHORIZED,
                "chimed: a bearer token is required (Authorization: Bearer <token>)",
            ))
        }
    };
    let ws = match tokio_tungstenite::accept_hdr_async(stream, check).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::info!(%peer, "connection refused: {e}");
            return;
        }
    };
    tracing::info!(%peer, "client connected");
    let (mut sink, mut frames) = ws.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let client = hub.register(out_tx.clone());
    let mut session = Session::new(hub, out_tx);
    let writer = tokio::spawn(async move {
        while let Some(line) = out_rx.recv().await {
            if sink.send(Message::text(line)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    loop {
        let frame = tokio::select! {
            f = frames.next() => f,
            _ = stop.wait_for(|s| *s) => break,
        };
        match frame {
            Some(Ok(Message::Text(text))) => session.line(text.as_str()),
            Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                Ok(text) => session.line(text),
                Err(_) => session.not_utf8(),
            },
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
    session.drain().await;
    drop(client);
    let _ = writer.await;
    tracing::info!(%peer, "client gone");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_authorized() {
        assert!(authorized(Some("Bearer s3cret"), "s3cret"));
        assert!(!authorized(Some("Bearer s3cre"), "s3cret"));
        assert!(!authorized(Some("Bearer s3cret2"), "s3cret"));
        assert!(!authorized(Some("Basic s3cret"), "s3cret"));
        assert!(!authorized(Some("s3cret"), "s3cret"));
        assert!(!authorized(None, "s3cret"));
        assert!(
            !authorized(Some("Bearer "), ""),
            "an empty token never matches"
        );
    }
}
