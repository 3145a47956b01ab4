//! Test fixture: an uploader plugin that "uploads" by copying a local file into a directory and
//! "downloads" by copying back, in chunks, reporting progress after each chunk.
//!
//! Config: `{"chunk_size": 4096, "chunk_delay_ms": 0}`. Upload URLs are `dir:///<directory>`; the
//! result JSON is `{"url": "dir:///<directory>/<file name>", "size": N}`. A transfer checks for
//! cancellation between chunks and then fails with status `CANCELLED`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chime_plugin_api::{PluginCallError, Progress, Uploader, export_uploader};

/// The uploader instance.
#[derive(Debug)]
pub struct DirUploader {
    chunk_size: usize,
    chunk_delay: Duration,
    cancelled: Mutex<HashSet<u64>>,
}

fn dir_path(url: &str) -> Result<PathBuf, PluginCallError> {
    url.strip_prefix("dir://")
        .map(PathBuf::from)
        .ok_or_else(|| PluginCallError::invalid(format!("not a dir:// url: {url}")))
}

impl DirUploader {
    fn copy(&self, from: &Path, to: &Path, progress: &Progress) -> Result<u64, PluginCallError> {
        let io = |error: std::io::Error| PluginCallError::failed(error.to_string());
        let mut input = std::fs::File::open(from).map_err(io)?;
        let total = input.metadata().map_err(io)?.len();
        let mut output = std::fs::File::create(to).map_err(io)?;
        let mut buffer = vec![0u8; self.chunk_size];
        let mut done = 0u64;
        progress.report(0, total);
        loop {
            if self
                .cancelled
                .lock()
                .map(|mut set| set.remove(&progress.task_id()))
                .unwrap_or(false)
            {
                return Err(PluginCallError::cancelled());
            }
            let read = input.read(&mut buffer).map_err(io)?;
            if read == 0 {
                return Ok(done);
            }
            output.write_all(&buffer[..read]).map_err(io)?;
            done += read as u64;
            progress.report(done, total);
            if !self.chunk_delay.is_zero() {
                std::thread::sleep(self.chunk_delay);
            }
        }
    }
}

impl Uploader for DirUploader {
    fn create(config_json: &str) -> Result<Self, PluginCallError> {
        let config: serde_json::Value = serde_json::from_str(config_json)
            .map_err(|error| PluginCallError::invalid(format!("bad config: {error}")))?;
        let chunk_size = config
            .get("chunk_size")
            .and_then(|v| v.as_u64())
            .unwrap_or(4096)
            .max(1);
        let delay = config
            .get("chunk_delay_ms")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        Ok(Self {
            chunk_size: chunk_size as usize,
            chunk_delay: Duration::from_millis(delay),
            cancelled: Mutex::new(HashSet::new()),
        })
    }

    fn upload(
        &self,
        local_path: &str,
        url: &str,
        _options_json: &str,
        progress: &Progress,
    ) -> Result<String, PluginCallError> {
        let dir = dir_path(url)?;
        let name = Path::new(local_path)
            .file_name()
            .ok_or_else(|| PluginCallError::invalid("local path has no file name"))?;
        let target = dir.join(name);
        let size = self.copy(Path::new(local_path), &target, progress)?;
        Ok(
            serde_json::json!({"url": format!("dir://{}", target.display()), "size": size})
                .to_string(),
        )
    }

    fn download(
        &self,
        local_path: &str,
        url: &str,
        _options_json: &str,
        progress: &Progress,
    ) -> Result<String, PluginCallError> {
        let source = dir_path(url)?;
        let size = self.copy(&source, Path::new(local_path), progress)?;
        Ok(serde_json::json!({"path": local_path, "size": size}).to_string())
    }

    fn cancel(&self, task_id: u64) {
        if let Ok(mut cancelled) = self.cancelled.lock() {
            cancelled.insert(task_id);
        }
    }
}

export_uploader!(DirUploader, "dir-uploader");
