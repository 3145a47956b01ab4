//! The transfers: resumable chunked upload and ranged download over a blocking HTTP client.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use chime_plugin_api::{PluginCallError, Progress, Uploader};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use serde::Deserialize;
use serde_json::{Value, json};

/// Read size of a download.
const IO_CHUNK: usize = 256 * 1024;

/// The plugin's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct Config {
    /// Bytes per `PUT`.
    chunk_bytes: u64,
    /// Reconnects after a network failure before giving up.
    retries: u32,
    /// Delay before the first reconnect (doubles each time, at most 5 s).
    retry_delay_ms: u64,
    /// Connect timeout.
    connect_timeout_ms: u64,
    /// Timeout of one request (a `PUT` of one chunk; each read of a download).
    timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            chunk_bytes: 2 * 1024 * 1024,
            retries: 5,
            retry_delay_ms: 200,
            connect_timeout_ms: 10_000,
            timeout_ms: 60_000,
        }
    }
}

/// The options of an upload.
#[derive(Debug, Deserialize)]
struct UploadOptions {
    token: String,
    content_type: String,
    resume_key: String,
    #[serde(default)]
    file_name: Option<String>,
}

/// The options of a download.
#[derive(Debug, Default, Deserialize)]
struct DownloadOptions {
    #[serde(default)]
    expected_size: Option<u64>,
}

/// The store's answer about an upload session.
#[derive(Debug, Deserialize)]
struct SessionAnswer {
    #[serde(default)]
    upload_id: Option<String>,
    offset: u64,
    #[serde(default)]
    uuid: Option<String>,
}

/// The uploader instance: one HTTP client (connection pool) for every transfer.
pub struct HttpUploader {
    client: Client,
    config: Config,
    cancelled: Mutex<HashSet<u64>>,
}

impl std::fmt::Debug for HttpUploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpUploader")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why one attempt stopped.
#[derive(Debug)]
enum Stop {
    /// The transfer failed for good (refused, local I/O, cancelled).
    Fatal(PluginCallError),
    /// The network failed: reconnect and resume.
    Retry(String),
}

impl From<PluginCallError> for Stop {
    fn from(e: PluginCallError) -> Self {
        Stop::Fatal(e)
    }
}

fn local_io(what: &str, e: io::Error) -> PluginCallError {
    PluginCallError::failed(format!("{what}: {e}"))
}

/// The server's refusal as the error message: its JSON `{code, desc}` plus `http_status`.
fn refused(response: Response) -> PluginCallError {
    let status = response.status();
    let text = response.text().unwrap_or_default();
    let mut answer: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({"desc": text}));
    if !answer.is_object() {
        answer = json!({"desc": text});
    }
    answer["http_status"] = json!(status.as_u16());
    if answer.get("code").is_none() {
        answer["code"] = json!(0);
    }
    PluginCallError::failed(answer.to_string())
}

/// Whether a status means "try again later" rather than "refused".
fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// Reports progress that never goes backwards.
struct Monotone<'a> {
    progress: &'a Progress,
    total: u64,
    last: Mutex<Option<u64>>,
}

impl<'a> Monotone<'a> {
    fn new(progress: &'a Progress, total: u64) -> Self {
        Self {
            progress,
            total,
            last: Mutex::new(None),
        }
    }

    /// Reports `done` unless an equal or larger value was reported already.
    fn report(&self, done: u64) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|l| done <= l) {
            return;
        }
        *last = Some(done);
        self.progress.report(done, self.total);
    }
}

impl HttpUploader {
    fn is_cancelled(&self, task: u64) -> bool {
        self.cancelled
            .lock()
            .map(|set| set.contains(&task))
            .unwrap_or(false)
    }

    /// Forgets a finished task's cancel flag.
    fn finish(&self, task: u64) {
        if let Ok(mut set) = self.cancelled.lock() {
            set.remove(&task);
        }
    }

    fn check_cancel(&self, task: u64) -> Result<(), PluginCallError> {
        if self.is_cancelled(task) {
            Err(PluginCallError::cancelled())
        } else {
            Ok(())
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are spent.
    fn with_retries<T>(
        &self,
        task: u64,
        mut attempt: impl FnMut() -> Result<T, Stop>,
    ) -> Result<T, PluginCallError> {
        let mut delay = Duration::from_millis(self.config.retry_delay_ms);
        let mut failures = 0u32;
        loop {
            self.check_cancel(task)?;
            match attempt() {
                Ok(v) => return Ok(v),
                Err(Stop::Fatal(e)) => return Err(e),
                Err(Stop::Retry(why)) => {
                    self.check_cancel(task)?;
                    failures += 1;
                    if failures > self.config.retries {
                        return Err(PluginCallError::failed(format!(
                            "network failure after {} attempts: {why}",
                            failures
                        )));
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// A network error: cancelled if the task was, else worth a retry.
    fn network(&self, task: u64, e: reqwest::Error) -> Stop {
        if self.is_cancelled(task) {
            Stop::Fatal(PluginCallError::cancelled())
        } else {
            Stop::Retry(e.to_string())
        }
    }

    fn begin(
        &self,
        task: u64,
        base: &str,
        options: &UploadOptions,
        size: u64,
    ) -> Result<SessionAnswer, Stop> {
        let response = self
            .client
            .post(format!("{base}/files/uploads"))
            .header(AUTHORIZATION, format!("Bearer {}", options.token))
            .json(&json!({
                "resume_key": options.resume_key,
                "size": size,
                "content_type": options.content_type,
                "file_name": options.file_name,
            }))
            .send()
            .map_err(|e| self.network(task, e))?;
        self.session_answer(task, response)
    }

    fn session_answer(&self, task: u64, response: Response) -> Result<SessionAnswer, Stop> {
        let status = response.status();
        if status.is_success() || status == StatusCode::CONFLICT {
            return response
                .json::<SessionAnswer>()
                .map_err(|e| self.network(task, e));
        }
        if retryable(status) {
            return Err(Stop::Retry(format!("server answered {status}")));
        }
        Err(Stop::Fatal(refused(response)))
    }

    /// One upload attempt: where the session stands, then chunks until complete.
    fn upload_attempt(
        &self,
        task: u64,
        path: &Path,
        base: &str,
        options: &UploadOptions,
        size: u64,
        progress: &Monotone<'_>,
    ) -> Result<String, Stop> {
        let session = self.begin(task, base, options, size)?;
        let mut offset = session.offset;
        progress.report(offset);
        if let Some(uuid) = session.uuid {
            return Ok(uuid);
        }
        let upload_id = session
            .upload_id
            .ok_or_else(|| PluginCallError::failed("the store answered no upload_id"))?;
        loop {
            self.check_cancel(task)?;
            if offset > size {
                return Err(Stop::Fatal(PluginCallError::failed(format!(
                    "the store holds {offset} bytes of a {size}-byte file"
                ))));
            }
            let len = self.config.chunk_bytes.max(1).min(size - offset);
            let chunk = read_chunk(path, offset, len)?;
            let response = self
                .client
                .put(format!("{base}/files/uploads/{upload_id}?offset={offset}"))
                .header(AUTHORIZATION, format!("Bearer {}", options.token))
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(chunk)
                .send()
                .map_err(|e| self.network(task, e))?;
            let answer = self.session_answer(task, response)?;
            offset = answer.offset;
            progress.report(offset);
            if let Some(uuid) = answer.uuid {
                return Ok(uuid);
            }
        }
    }

    /// One download attempt: from the local file's length to the end.
    fn download_attempt(
        &self,
        task: u64,
        path: &Path,
        url: &str,
        progress: &Monotone<'_>,
    ) -> Result<u64, Stop> {
        let have = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mut request = self.client.get(url);
        if have > 0 {
            request = request.header(RANGE, format!("bytes={have}-"));
        }
        let mut response = request.send().map_err(|e| self.network(task, e))?;
        let status = response.status();
        let (start, total) = match status {
            StatusCode::OK => (0, response.content_length()),
            StatusCode::PARTIAL_CONTENT => {
                let range = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range);
                match range {
                    Some((start, total)) if start == have => (start, Some(total)),
                    // Not the range asked for: start over.
                    _ => {
                        truncate(path, 0)?;
                        return Err(Stop::Retry("unexpected range".into()));
                    }
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let total = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes */"))
                    .and_then(|v| v.parse::<u64>().ok());
                if total == Some(have) {
                    progress.report(have);
                    return Ok(have);
                }
                truncate(path, 0)?;
                return Err(Stop::Retry("local file longer than the remote one".into()));
            }
            s if retryable(s) => return Err(Stop::Retry(format!("server answered {s}"))),
            _ => return Err(Stop::Fatal(refused(response))),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(|e| local_io("open", e))?;
        file.set_len(start).map_err(|e| local_io("truncate", e))?;
        file.seek(SeekFrom::Start(start))
            .map_err(|e| local_io("seek", e))?;
        let mut done = start;
        progress.report(done);
        let mut buf = vec![0u8; IO_CHUNK];
        loop {
            self.check_cancel(task)?;
            let n = match response.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    file.flush().map_err(|e| local_io("write", e))?;
                    return Err(Stop::Retry(format!("download interrupted: {e}")));
                }
            };
            file.write_all(&buf[..n])
                .map_err(|e| local_io("write", e))?;
            done += n as u64;
            progress.report(done);
        }
        file.sync_data().map_err(|e| local_io("sync", e))?;
        if let Some(total) = total
            && done < total
        {
            return Err(Stop::Retry(format!("{done} of {total} bytes arrived")));
        }
        Ok(done)
    }
}

/// `Content-Range: bytes START-END/TOTAL` → `(START, TOTAL)`.
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

/// `len` bytes of the file at `path` from `offset` (one `PUT` body).
fn read_chunk(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, PluginCallError> {
    let mut file = File::open(path).map_err(|e| local_io("open", e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| local_io("seek", e))?;
    let mut chunk = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len)
        .read_to_end(&mut chunk)
        .map_err(|e| local_io("read", e))?;
    if (chunk.len() as u64) < len {
        return Err(PluginCallError::failed(
            "the file shrank while it was being uploaded",
        ));
    }
    Ok(chunk)
}

fn truncate(path: &Path, len: u64) -> Result<(), Stop> {
    match OpenOptions::new().write(true).open(path) {
        Ok(f) => f
            .set_len(len)
            .map_err(|e| Stop::Fatal(local_io("truncate", e))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Stop::Fatal(local_io("open", e))),
    }
}

impl Uploader for HttpUploader {
    fn create(config_json: &str) -> Result<Self, PluginCallError> {
        let config: Config = if config_json.trim().is_empty() {
            Config::default()
        } else {
            serde_json::from_str(config_json)
                .map_err(|e| PluginCallError::invalid(format!("bad config: {e}")))?
        };
        let client = Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|e| PluginCallError::failed(format!("http client: {e}")))?;
        Ok(Self {
            client,
            config,
            cancelled: Mutex::new(HashSet::new()),
        })
    }

    fn upload(
        &self,
        local_path: &str,
        url: &str,
        options_json: &str,
        progress: &Progress,
    ) -> Result<String, PluginCallError> {
        let task = progress.task_id();
        let result = (|| {
            let options: UploadOptions = serde_json::from_str(options_json).map_err(|e| {
                PluginCallError::invalid(format!(
                    "options must be {{token, content_type, resume_key, file_name?}}: {e}"
                ))
            })?;
            let path = Path::new(local_path);
            let size = std::fs::metadata(path)
                .map_err(|e| local_io(local_path, e))?
                .len();
            if size == 0 {
                return Err(PluginCallError::invalid("the file is empty"));
            }
            let base = url.trim_end_matches('/');
            let monotone = Monotone::new(progress, size);
            let uuid = self.with_retries(task, || {
                self.upload_attempt(task, path, base, &options, size, &monotone)
            })?;
            Ok(json!({"uuid": uuid, "size": size}).to_string())
        })();
        self.finish(task);
        result
    }

    fn download(
        &self,
        local_path: &str,
        url: &str,
        options_json: &str,
        progress: &Progress,
    ) -> Result<String, PluginCallError> {
        let task = progress.task_id();
        let result = (|| {
            let options: DownloadOptions = if options_json.trim().is_empty() {
                DownloadOptions::default()
            } else {
                serde_json::from_str(options_json).map_err(|e| {
                    PluginCallError::invalid(format!("options must be {{expected_size?}}: {e}"))
                })?
            };
            let path = Path::new(local_path);
            if let Some(expected) = options.expected_size
                && std::fs::metadata(path).is_ok_and(|m| m.len() > expected)
            {
                truncate(path, 0).map_err(|e| match e {
                    Stop::Fatal(e) => e,
                    Stop::Retry(why) => PluginCallError::failed(why),
                })?;
            }
            let monotone = Monotone::new(progress, options.expected_size.unwrap_or(0));
            let size =
                self.with_retries(task, || self.download_attempt(task, path, url, &monotone))?;
            if let Some(expected) = options.expected_size
                && size != expected
            {
                let _ = std::fs::remove_file(path);
                return Err(PluginCallError::failed(format!(
                    "downloaded {size} bytes, expected {expected}; the file was removed"
                )));
            }
            Ok(json!({"size": size}).to_string())
        })();
        self.finish(task);
        result
    }

    fn cancel(&self, task_id: u64) {
        if let Ok(mut set) = self.cancelled.lock() {
            set.insert(task_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("bytes 5-9/10"), Some((5, 10)));
        assert_eq!(parse_content_range("bytes */10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn config_defaults_and_overrides() {
        let c: Config = serde_json::from_str(r#"{"chunk_bytes": 1024}"#).unwrap();
        assert_eq!((c.chunk_bytes, c.retries), (1024, 5));
        assert!(HttpUploader::create(r#"{"retries": "x"}"#).is_err());
        assert!(HttpUploader::create("").is_ok());
    }
}
