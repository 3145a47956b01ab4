//! `chime-media-bench`: upload and download throughput of one large file (default 50 MB) over
//! loopback (issue 6's benchmark).
//!
//! A real `chime-server` (its HTTP file store), the real `chime-upload-plugin` cdylib loaded by
//! path through the plugin host, a raw protocol client for the upload ticket and the download
//! URL. Each run uploads the file under a fresh resume key (so nothing is resumed) and downloads
//! it to a fresh path, then checks the bytes. Figures (MiB/s, best and median of the runs) are
//! printed, never asserted.
//!
//! ```text
//! cargo build --release -p chime-server -p chime-upload-plugin
//! cargo run --release -p chime-tests --bin chime-media-bench -- --size-mb 50 --runs 5
//! ```

use std::sync::Arc;
use std::time::Instant;

use chime_plugin_api::host::{HostConfig, PluginHost, UploaderPlugin};
use chime_proto::pb::{self, request::Kind as ReqKind, response::Kind as RespKind};
use chime_tests::wire::WireClient;
use chime_tests::{APP_ID, TestServer, plugin_library};
use clap::Parser;
use serde_json::{Value, json};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "chime-media-bench",
    about = "upload and download throughput of one file through the upload plugin"
)]
struct Args {
    /// File size in MiB.
    #[arg(long, default_value_t = 50)]
    size_mb: u64,
    /// Upload + download rounds.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The plugin's chunk per PUT, in MiB.
    #[arg(long, default_value_t = 2)]
    chunk_mb: u64,
}

const MIB: u64 = 1024 * 1024;

fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / MIB as f64 / secs.max(1e-9)
}

/// Median and best of `values` (MiB/s).
fn summary(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[values.len() / 2], values[values.len() - 1])
}

fn load_plugin(chunk_mb: u64) -> UploaderPlugin {
    let path = plugin_library("chime-upload-plugin", "chime_upload_plugin");
    let host = PluginHost::new(HostConfig::default());
    host.load(&path, &json!({"chunk_bytes": chunk_mb * MIB}).to_string())
        .unwrap_or_else(|e| panic!("load {}: {e}", path.display()));
    host.uploader().expect("an uploader")
}

async fn request(client: &mut WireClient, kind: ReqKind) -> RespKind {
    client
        .call(kind)
        .await
        .unwrap_or_else(|e| panic!("request failed: {e}"))
        .kind
        .expect("an answer")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let size = args.size_mb * MIB;
    let server = TestServer::start().await;
    let plugin = load_plugin(args.chunk_mb);
    let mut client = WireClient::login(
        &server.ws_url(),
        APP_ID,
        "bench",
        &server.user_sig("bench"),
        "bench-device",
    )
    .await
    .unwrap_or_else(|e| panic!("login: {e}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("source.bin");
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    std::fs::write(&source, &bytes).expect("write the source file");
    println!(
        "chime-media-bench: {} MiB file, {} runs, {} MiB chunks, loopback",
        args.size_mb, args.runs, args.chunk_mb
    );
    let progress: chime_plugin_api::host::ProgressFn = Arc::new(|_, _| {});
    let (mut ups, mut downs) = (Vec::new(), Vec::new());
    for run in 0..args.runs {
        let RespKind::FileUploadTicket(ticket) = request(
            &mut client,
            ReqKind::FileUploadTicket(pb::FileUploadTicketReq {}),
        )
        .await
        else {
            panic!("unexpected ticket answer");
        };
        let options = json!({
            "token": ticket.token,
            "content_type": "video/mp4",
            "resume_key": format!("bench/{run}/video"),
        });
        let t0 = Instant::now();
        let answer = plugin
            .upload(
                plugin.new_task_id(),
                source.to_str().expect("utf-8 path"),
                &ticket.base_url,
                &options.to_string(),
                Arc::clone(&progress),
            )
            .await
            .unwrap_or_else(|e| panic!("upload: {e}"));
        let up = t0.elapsed().as_secs_f64();
        let answer: Value = serde_json::from_str(&answer).expect("JSON answer");
        let uuid = answer["uuid"].as_str().expect("uuid").to_owned();
        let RespKind::FileDownloadUrl(url) = request(
            &mut client,
            ReqKind::FileDownloadUrl(pb::FileDownloadUrlReq { uuid }),
        )
        .await
        else {
            panic!("unexpected download url answer");
        };
        let target = dir.path().join(format!("down-{run}.bin"));
        let t1 = Instant::now();
        plugin
            .download(
                plugin.new_task_id(),
                target.to_str().expect("utf-8 path"),
                &url.url,
                &json!({"expected_size": size}).to_string(),
                Arc::clone(&progress),
            )
            .await
            .unwrap_or_else(|e| panic!("download: {e}"));
        let down = t1.elapsed().as_secs_f64();
        assert!(
            std::fs::read(&target).expect("read the download") == bytes,
            "downloaded bytes differ"
        );
        let _ = std::fs::remove_file(&target);
        println!(
            "run {run}: upload {:.3} s ({:.1} MiB/s), download {:.3} s ({:.1} MiB/s)",
            up,
            mib_per_s(size, up),
            down,
            mib_per_s(size, down)
        );
        ups.push(mib_per_s(size, up));
        downs.push(mib_per_s(size, down));
    }
    let (up_median, up_best) = summary(&mut ups);
    let (down_median, down_best) = summary(&mut downs);
    println!("upload:   median {up_median:.1} MiB/s, best {up_best:.1} MiB/s");
    println!("download: median {down_median:.1} MiB/s, best {down_best:.1} MiB/s");
}
