//! `chimed`: the Chime engine as a headless daemon, driven by JSON-RPC 2.0 (api.md §3).
//!
//! This binary is a thin front end: every method goes to [`chime_engine::Sdk`], the same dispatch
//! table the C ABI and the tests use; the daemon adds only the JSON-RPC framing ([`rpc`]) and the
//! line transport over stdin/stdout ([`stdio`]). Logs go to stderr only, so stdout carries nothing
//! but protocol lines. `CHIMED_LOG` (an `EnvFilter` directive, default `warn`) sets the log level.

mod rpc;
mod stdio;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "chimed",
    version,
    about = "The Chime engine as a JSON-RPC 2.0 daemon"
)]
struct Args {
    /// Serve JSON-RPC 2.0 lines over stdin/stdout (the only mode for now).
    #[arg(long)]
    stdio: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_env("CHIMED_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    if !args.stdio {
        eprintln!("chimed: choose a mode: --stdio (JSON-RPC 2.0 lines over stdin/stdout)");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chimed: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(stdio::serve(tokio::io::stdin(), tokio::io::stdout())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("chimed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
