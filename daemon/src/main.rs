//! `chimed`: the Chime engine as a headless daemon, driven by JSON-RPC 2.0 (api.md §3).
//!
//! This binary is a thin front end: every method goes to [`chime_engine::Sdk`], the same dispatch
//! table the C ABI and the tests use. The daemon adds the JSON-RPC framing ([`rpc`]), several
//! named engines shared by every client ([`hub`]), one client's request handling ([`session`]),
//! two transports — lines over stdin/stdout ([`stdio`]) and a WebSocket with a bearer token
//! ([`ws`]) — and a TOML config file ([`config`]) that starts and logs in engines at start-up.
//! SIGTERM (or SIGINT) stops it gracefully: requests in flight answer, every engine is
//! un-initialised (its outbox stays on disk and is sent at the next start). Logs go to stderr
//! only; `CHIMED_LOG` (an `EnvFilter` directive, default `warn`) sets the level.

mod config;
mod hub;
mod rpc;
mod session;
mod stdio;
mod ws;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use serde_json::json;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::config::DaemonConfig;
use crate::hub::Hub;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "chimed",
    version,
    about = "The Chime engine as a JSON-RPC 2.0 daemon"
)]
struct Args {
    /// Serve JSON-RPC 2.0 lines over stdin/stdout; EOF on stdin stops the daemon.
    #[arg(long)]
    stdio: bool,
    /// Serve JSON-RPC 2.0 over WebSocket on HOST:PORT (port 0 picks one); needs a token (config
    /// `token` or `$CHIMED_TOKEN`).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// A TOML config file: `listen`, `token`, and `[[engine]]` tables started at start-up.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_env("CHIMED_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let config = match &args.config {
        Some(path) => match DaemonConfig::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("chimed: config: {e}");
                return ExitCode::from(2);
            }
        },
        None => DaemonConfig::default(),
    };
    let listen = args.listen.clone().or_else(|| config.listen.clone());
    if !args.stdio && listen.is_none() {
        eprintln!(
            "chimed: choose a mode: --stdio (JSON-RPC lines over stdin/stdout) and/or --listen \
             HOST:PORT (WebSocket)"
        );
        return ExitCode::from(2);
    }
    let token = config
        .token
        .clone()
        .or_else(|| std::env::var("CHIMED_TOKEN").ok())
        .filter(|t| !t.is_empty());
    if listen.is_some() && token.is_none() {
        eprintln!("chimed: --listen needs a bearer token: `token` in the config or $CHIMED_TOKEN");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chimed: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args.stdio, listen, token, config))
}

async fn run(
    stdio: bool,
    listen: Option<String>,
    token: Option<String>,
    config: DaemonConfig,
) -> ExitCode {
    let hub = Hub::new();
    if let Err(code) = start_engines(&hub, &config).await {
        hub.shutdown().await;
        return code;
    }
    let (stop_tx, stop) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    spawn_signal_watch(stop_tx.clone());

    let mut ws_task = None;
    if let (Some(addr), Some(token)) = (listen, token) {
        let listener = match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("chimed: cannot listen on {addr}: {e}");
                hub.shutdown().await;
                return ExitCode::FAILURE;
            }
        };
        let local = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("chimed: {e}");
                return ExitCode::FAILURE;
            }
        };
        if !local.ip().is_loopback() {
            tracing::warn!(
                "listening on {local}, which is NOT loopback: anyone who can reach it and knows \
                 the token drives these engines; put TLS in front of it"
            );
            eprintln!("chimed: WARNING: listening on non-loopback address {local}");
        }
        // The ready line (on stdout only when stdout is not the JSON-RPC channel).
        if stdio {
            tracing::info!("chimed listening ws://{local}/");
        } else {
            println!("chimed listening ws://{local}/");
        }
        ws_task = Some(tokio::spawn(ws::serve(
            hub.clone(),
            listener,
            Arc::from(token.as_str()),
            stop.clone(),
        )));
    }

    let mut code = ExitCode::SUCCESS;
    if stdio {
        let served = stdio::serve(
            hub.clone(),
            tokio::io::stdin(),
            tokio::io::stdout(),
            stop.clone(),
        )
        .await;
        if let Err(e) = served {
            tracing::error!("chimed: {e}");
            code = ExitCode::FAILURE;
        }
        let _ = stop_tx.send(true);
    } else {
        let mut stop = stop.clone();
        let _ = stop.wait_for(|s| *s).await;
    }
    if let Some(task) = ws_task {
        let _ = task.await;
    }
    hub.shutdown().await;
    tracing::info!("chimed stopped");
    code
}

/// Starts (and logs in) the config file's engines; a bad engine config stops the daemon.
async fn start_engines(hub: &Hub, config: &DaemonConfig) -> Result<(), ExitCode> {
    for entry in &config.engines {
        if let Err(e) = hub.call(&entry.name, "init_sdk", entry.init_params()).await {
            eprintln!(
                "chimed: engine {}: init_sdk: {} {}",
                entry.name, e.code, e.desc
            );
            return Err(ExitCode::from(2));
        }
        if let Some(user_id) = &entry.user_id {
            let params = json!({
                "user_id": user_id,
                "user_sig": entry.user_sig.clone().unwrap_or_default(),
            });
            match hub.call(&entry.name, "login", params).await {
                Ok(_) => tracing::info!(engine = %entry.name, %user_id, "logged in"),
                // Not fatal: the engine stays up, and a client may log in later.
                Err(e) => tracing::warn!(
                    engine = %entry.name, %user_id, code = e.code, "login at start-up failed: {}", e.desc
                ),
            }
        }
    }
    Ok(())
}

/// SIGTERM and SIGINT set `stop`.
fn spawn_signal_watch(stop: Arc<watch::Sender<bool>>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot watch signals");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        let _ = stop.send(true);
    });
}
