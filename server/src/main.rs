//! The `chime-server` binary: the command line of api.md §8 over [`chime_server::start`].

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chime_server::config::parse_app;
use chime_server::{ServerConfig, Tunables, usersig};
use clap::{Parser, Subcommand, ValueEnum};

// sled allocates per update; mimalloc roughly halves the cost of that against glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Chime server.
#[derive(Debug, Parser)]
#[command(name = "chime-server", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Address of the WebSocket endpoint (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Data directory (the sled store lives in DIR/store).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// An app as SDKAPPID:SECRET_KEY (repeatable).
    #[arg(long = "app")]
    apps: Vec<String>,
    /// TOML file with the tunables (multi-device policy, heartbeat, retention, limits).
    #[arg(long)]
    config: Option<PathBuf>,
    /// UDP address of the QUIC endpoint (port 0 picks a free one); none = no QUIC endpoint.
    #[arg(long)]
    quic_listen: Option<SocketAddr>,
    /// PEM certificate chain of the QUIC endpoint (default: a self-signed certificate kept in
    /// DATA_DIR/quic, its SHA-256 printed and written to DATA_DIR/quic/cert.sha256).
    #[arg(long, requires = "quic_key")]
    quic_cert: Option<PathBuf>,
    /// PEM private key of `--quic-cert`.
    #[arg(long, requires = "quic_cert")]
    quic_key: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print a UserSig.
    Usersig {
        /// The SDKAppID.
        #[arg(long)]
        sdk_app_id: u64,
        /// The app's secret key.
        #[arg(long)]
        key: String,
        /// The user.
        #[arg(long)]
        user_id: String,
        /// Validity in seconds (default 7 days).
        #[arg(long, default_value_t = 604_800)]
        expire: u64,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Cmd::Usersig {
        sdk_app_id,
        key,
        user_id,
        expire,
    }) = &cli.command
    {
        println!(
            "{}",
            usersig::gen_user_sig(*sdk_app_id, key, user_id, *expire)
        );
        return ExitCode::SUCCESS;
    }
    init_logs(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("chime-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), chime_server::ServerError> {
    let data_dir = cli
        .data_dir
        .ok_or_else(|| chime_server::ServerError::Config("--data-dir is required".into()))?;
    let mut config = ServerConfig::new(cli.listen, data_dir);
    for app in &cli.apps {
        let (id, key) = parse_app(app)?;
        config = config.with_app(id, key);
    }
    if let Some(path) = &cli.config {
        config.tunables = Tunables::from_file(path)?;
    }
    if let Some(listen) = cli.quic_listen {
        config.quic = Some(chime_server::quic::QuicSettings {
            listen,
            cert: cli
                .quic_cert
                .zip(cli.quic_key)
                .map(|(cert_chain, private_key)| chime_server::quic::CertFiles {
                    cert_chain,
                    private_key,
                }),
        });
    } else if cli.quic_cert.is_some() {
        return Err(chime_server::ServerError::Config(
            "--quic-cert needs --quic-listen".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = chime_server::start(config).await?;
        {
            let mut out = std::io::stdout().lock();
            // The QUIC line first: a reader that stops at the WebSocket line has seen both.
            if let Some(quic) = server.quic() {
                writeln!(
                    out,
                    "chime-server listening {} sha256:{}",
                    quic.url(),
                    quic.cert_sha256()
                )?;
            }
            writeln!(out, "chime-server listening {}", server.ws_url())?;
            out.flush()?;
        }
        wait_for_signal().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
