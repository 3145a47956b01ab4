//! The stdio transport: JSON-RPC lines in on stdin, answers and event notifications out on stdout.
//!
//! Stdout is one client of the [`Hub`]: every output line — answers and engine events alike —
//! goes through one writer task fed by one channel ([`crate::session`]). At EOF on stdin, or when
//! `stop` fires (SIGTERM), the daemon lets in-flight requests answer (bounded), un-initialises
//! every engine, flushes and returns.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

use crate::hub::Hub;
use crate::session::Session;

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

/// Serves JSON-RPC lines from `input` to `output` until EOF on `input` or `stop`.
pub async fn serve<R, W>(
    hub: Arc<Hub>,
    input: R,
    output: W,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(write_lines(output, out_rx));
    let client = hub.register(out_tx.clone());
    let mut session = Session::new(hub.clone(), out_tx);

    let mut lines = BufReader::new(input).lines();
    let read_result = loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            _ = stop.wait_for(|s| *s) => break Ok(()),
        };
        match line {
            Ok(Some(line)) => session.line(&line),
            Ok(None) => break Ok(()),
            Err(e) => break Err(ServeError::Read(e)),
        }
    };

    session.drain().await;
    hub.shutdown().await;
    drop(client);
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
    use std::time::Duration;

    use serde_json::{Value, json};
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn session(input: &str) -> Vec<Value> {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let (out_read, out_write) = tokio::io::duplex(64 * 1024);
        let (_stop_tx, stop) = watch::channel(false);
        let serving = tokio::spawn(serve(Hub::new(), server, out_write, stop));
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
