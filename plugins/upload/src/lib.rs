//! The uploader plugin of Chime: moves media files between the engine and the server's HTTP file
//! store (docs/files.md), blocking on the host's transfer thread.
//!
//! - `upload(local_path, url = the ticket's base_url, options = {"token", "content_type",
//!   "resume_key", "file_name"?})` → `{"uuid", "size"}`. It asks the store where the upload of
//!   `resume_key` stands (`POST /files/uploads`) and sends the rest in chunks (`PUT
//!   /files/uploads/{id}?offset=N`), so an upload cut by a dropped connection, a cancel or a
//!   restart on either side goes on from what the server already has.
//! - `download(local_path, url = a signed download URL, options = {"expected_size"?})` →
//!   `{"size"}`. A partial `local_path` is resumed with `Range: bytes=N-`; the final size is
//!   checked against `expected_size` (a mismatching file is removed).
//!
//! Progress is reported after each chunk the store acknowledged (upload) and as bytes arrive
//! (download), and never goes backwards (after a reconnect the store may hold fewer bytes than
//! were sent; the report waits until it passes the last one). `cancel` stops a transfer before
//! its next chunk (upload) or read (download), which then fails with status `CANCELLED`.
//!
//! A refusal by the server fails the transfer at once (no retry) with a message that is the
//! server's JSON answer plus the HTTP status: `{"code", "desc", "http_status"}` (codes of
//! api.md §6: 7005 too large, 7006 empty, 10007 forbidden, 7004 gone, 70001 token expired...).
//! Network failures are retried `retries` times with a growing delay.
//!
//! Config (JSON, every key optional): `{"chunk_bytes": 2097152, "retries": 5,
//! "retry_delay_ms": 200, "connect_timeout_ms": 10000, "timeout_ms": 60000}`.

mod transfer;

pub use transfer::HttpUploader;

chime_plugin_api::export_uploader!(HttpUploader, "chime-upload");
