//! The `chime-server` binary: the command line of api.md §8 over [`chime_server::start`].

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chime_server::config::{LogFormat, parse_app};
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
    /// Address of the HTTP endpoint: the REST admin API (port 0 picks a free one); none = no
    /// HTTP endpoint.
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Log format on stderr (default: the config file's `log_format`, else `text`).
    #[arg(long, value_enum)]
    log_format: Option<CliLogFormat>,
    /// Log filter on stderr: a level (`none error warn info debug trace`) or `tracing`
    /// directives (default: `RUST_LOG`, else the config file's `log_level`, else `info`).
    #[arg(long)]
    log_level: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CliLogFormat {
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

/// Installs the stderr log: the format from `--log-format`, else the config file, else text;
/// the filter from `--log-level`, else `RUST_LOG`, else the config file, else `info` (`none` is
/// `off`). A filter that does not parse is a configuration error.
fn init_logs(cli: &Cli, tunables: &Tunables) -> Result<(), chime_server::ServerError> {
    let format = match cli.log_format {
        Some(CliLogFormat::Text) => LogFormat::Text,
        Some(CliLogFormat::Json) => LogFormat::Json,
        None => tunables.log_format,
    };
    let directives = cli
        .log_level
        .clone()
        .or_else(|| {
            std::env::var("RUST_LOG")
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .or_else(|| tunables.log_level.clone())
        .unwrap_or_else(|| "info".to_owned());
    let directives = if directives.trim().eq_ignore_ascii_case("none") {
        "off".to_owned()
    } else {
        directives
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .map_err(|e| chime_server::ServerError::Config(format!("log level {directives:?}: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
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
    // The config file is read first: it may set the log format and level.
    let tunables = match cli.config.as_deref().map(Tunables::from_file).transpose() {
        Ok(tunables) => tunables.unwrap_or_default(),
        Err(e) => {
            eprintln!("chime-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = init_logs(&cli, &tunables) {
        eprintln!("chime-server: {e}");
        return ExitCode::FAILURE;
    }
    match run(cli, tunables) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("chime-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, tunables: Tunables) -> Result<(), chime_server::ServerError> {
    let data_dir = cli
        .data_dir
        .ok_or_else(|| chime_server::ServerError::Config("--data-dir is required".into()))?;
    let mut config = ServerConfig::new(cli.listen, data_dir);
    for app in &cli.apps {
        let (id, key) = parse_app(app)?;
        config = config.with_app(id, key);
    }
    config.tunables = tunables;
    config.http_listen = cli.http_listen;
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
            // The QUIC and HTTP lines first: a reader that stops at the WebSocket line has seen
            // them all.
            if let Some(quic) = server.quic() {
                writeln!(
                    out,
                    "chime-server listening {} sha256:{}",
                    quic.url(),
                    quic.cert_sha256()
                )?;
            }
            if let Some(http) = server.http() {
                writeln!(out, "chime-server listening http {}", http.url())?;
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
