//! The stdio transport: JSON-RPC lines in on stdin, answers and event notifications out on stdout.
//!
//! Requests run concurrently (each in its own task), so a slow `send_message` never holds up
//! `get_login_status`. Every output line — answers and engine events alike — goes through one
//! writer task fed by one channel, so lines never interleave and events keep their order. At EOF
//! on stdin the daemon lets in-flight requests answer (bounded), calls `un_init_sdk`, flushes
//! and returns.

use std::sync::Arc;
use std::time::Duration;

use chime_engine::{Event, Sdk};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::rpc::{self, Incoming};

/// How long in-flight requests get to answer after stdin closes.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the daemon stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Reading stdin failed.
    #[error("reading stdin: {0}")]
    Read(#[source] std::io::Error),
    /// Writing stdout failed (the reader went away).
    #[error("writing stdout: {0}")]
    Write(#[source] std::io::Error),
}

/// Serves JSON-RPC lines from `input` to `output` until EOF on `input`.
pub async fn serve<R, W>(input: R, output: W) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(write_lines(output, out_rx));

    let sdk = Arc::new(Sdk::new());
    let events = out_tx.clone();
    sdk.set_event_handler(Some(Arc::new(move |event: Event| {
        // The engine thread never blocks here: the channel is unbounded and the writer drains it.
        let _ = events.send(rpc::event_line(&event.name, &event.data));
    })));

    let mut in_flight = JoinSet::new();
    let mut lines = BufReader::new(input).lines();
    let read_result = loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            // Reap finished requests so the set does not grow with the session.
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => continue,
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => break Ok(()),
            Err(e) => break Err(ServeError::Read(e)),
        };
        match rpc::parse_line(&line) {
            None => {}
            Some(Incoming::Invalid(answer)) => {
                let _ = out_tx.send(answer);
            }
            Some(Incoming::Request { id, method, params }) => {
                let sdk = sdk.clone();
                let out = out_tx.clone();
                in_flight.spawn(async move {
                    tracing::debug!(%method, "request");
                    let outcome = sdk.call(&method, params).await;
                    let _ = out.send(rpc::answer_line(&id, &outcome));
                });
            }
            Some(Incoming::Notification { method, params }) => {
                let sdk = sdk.clone();
                in_flight.spawn(async move {
                    if let Err(e) = sdk.call(&method, params).await {
                        tracing::warn!(%method, code = e.code, desc = %e.desc, "notification failed");
                    }
                });
            }
        }
    };

    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("requests still running {DRAIN_TIMEOUT:?} after EOF; shutting down anyway");
        in_flight.abort_all();
    }
    let _ = sdk.call("un_init_sdk", json!({})).await;
    sdk.set_event_handler(None);
    drop(sdk);
    drop(out_tx);
    let written = match writer.await {
        Ok(r) => r,
        Err(e) => Err(std::io::Error::other(e)),
    };
    read_result?;
    written.map_err(ServeError::Write)
}

/// The one writer: each line then `\n`, flushed whenever the queue is momentarily empty.
async fn write_lines<W>(
    mut output: W,
    mut rx: mpsc::UnboundedReceiver<String>,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    while let Some(line) = rx.recv().await {
        output.write_all(line.as_bytes()).await?;
        output.write_all(b"\n").await?;
        while let Ok(more) = rx.try_recv() {
            output.write_all(more.as_bytes()).await?;
            output.write_all(b"\n").await?;
        }
        output.flush().await?;
    }
    output.flush().await
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn session(input: &str) -> Vec<Value> {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let (out_read, out_write) = tokio::io::duplex(64 * 1024);
        let serving = tokio::spawn(serve(server, out_write));
        client.write_all(input.as_bytes()).await.unwrap();
        drop(client);
        tokio::time::timeout(Duration::from_secs(10), serving)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let mut text = String::new();
        let mut out_read = out_read;
        out_read.read_to_string(&mut text).await.unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn every_request_gets_one_answer_and_notifications_none() {
        let answers = session(concat!(
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"get_login_status\"}\n",
            "\n",
            "{\"jsonrpc\":\"2.0\",\"method\":\"get_login_status\"}\n",
            "not json\n",
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"un_init_sdk\"}\n",
        ))
        .await;
        assert_eq!(answers.len(), 3, "{answers:?}");
        let by_id = |id: Value| {
            answers
                .iter()
                .find(|a| a["id"] == id)
                .cloned()
                .unwrap_or_else(|| panic!("no answer with id {id} in {answers:?}"))
        };
        assert_eq!(by_id(json!(1))["error"]["code"], json!(6013));
        assert_eq!(by_id(Value::Null)["error"]["code"], json!(6027));
        assert_eq!(by_id(json!(2))["result"], json!({}));
    }
}
