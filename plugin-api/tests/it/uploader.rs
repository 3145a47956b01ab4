//! The uploader vtable end to end, through the copying test plugin.

use std::sync::{Arc, Mutex};

use chime_plugin_api::host::{LoadedPlugin, PluginError, ProgressFn, UploaderPlugin};

use crate::support::{GENEROUS, host_with_timeout, plugin_path};

fn load(config: &str) -> UploaderPlugin {
    let host = host_with_timeout(GENEROUS);
    match host
        .load(plugin_path("chime_test_uploader"), config)
        .unwrap()
    {
        LoadedPlugin::Uploader(uploader) => uploader,
        other => panic!("expected an uploader, got {other:?}"),
    }
}

/// Every `(done, total)` progress report, in order.
type Seen = Arc<Mutex<Vec<(u64, u64)>>>;

fn recorder() -> (ProgressFn, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    (
        Arc::new(move |done, total| sink.lock().unwrap().push((done, total))),
        seen,
    )
}

#[tokio::test]
async fn upload_and_download_copy_the_file_with_progress() {
    let uploader = load(r#"{"chunk_size": 1000}"#);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let source = dir.path().join("photo.bin");
    let content: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &content).unwrap();

    let (progress, seen) = recorder();
    let task = uploader.new_task_id();
    let url = format!("dir://{}", store.display());
    let result = uploader
        .upload(task, source.to_str().unwrap(), &url, "{}", progress)
        .await
        .unwrap();
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    let stored = store.join("photo.bin");
    assert_eq!(
        result,
        serde_json::json!({"url": format!("dir://{}", stored.display()), "size": 2500})
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(0, 2500), (1000, 2500), (2000, 2500), (2500, 2500)]
    );
    assert_eq!(std::fs::read(&stored).unwrap(), content);

    let back = dir.path().join("back.bin");
    let (progress, _) = recorder();
    let result = uploader
        .download(
            uploader.new_task_id(),
            back.to_str().unwrap(),
            &format!("dir://{}", stored.display()),
            "{}",
            progress,
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&result).unwrap(),
        serde_json::json!({"path": back.to_str().unwrap(), "size": 2500})
    );
    assert_eq!(std::fs::read(&back).unwrap(), content);
}

#[tokio::test]
async fn a_running_transfer_can_be_cancelled_from_another_task() {
    let uploader = load(r#"{"chunk_size": 10, "chunk_delay_ms": 20}"#);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.bin");
    std::fs::write(&source, vec![7u8; 100_000]).unwrap();
    let (progress, seen) = recorder();
    let task = uploader.new_task_id();
    let running = {
        let uploader = uploader.clone();
        let source = source.to_str().unwrap().to_owned();
        let url = format!("dir://{}", dir.path().join("out").display());
        std::fs::create_dir(dir.path().join("out")).unwrap();
        tokio::spawn(async move { uploader.upload(task, &source, &url, "{}", progress).await })
    };
    // Wait (bounded) until the transfer has started, then cancel it.
    let deadline = std::time::Instant::now() + GENEROUS;
    while std::time::Instant::now() < deadline {
        if seen.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    uploader.cancel(task).await.unwrap();
    let error = running.await.unwrap().unwrap_err();
    assert_eq!(
        error,
        PluginError::CallFailed {
            name: "dir-uploader".to_owned(),
            status: chime_plugin_api::abi::CHIME_STATUS_CANCELLED,
            message: "cancelled".to_owned(),
        }
    );
    let last = *seen.lock().unwrap().last().unwrap();
    assert!(last.0 < 100_000, "cancelled before the end: {last:?}");
    // A cancellation is not a plugin failure.
    assert_eq!(uploader.info().status.consecutive_failures, 0);
}
