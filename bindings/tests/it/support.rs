//! Shared test helpers: the C ABI called from Rust with owned strings, and where the built
//! library and header are.

use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};

use chime::{ChimeEngine, chime_call_sync, chime_create, chime_string_free};
use serde_json::Value;

/// Takes ownership of a string returned by the library.
pub fn take(s: *mut c_char) -> String {
    assert!(!s.is_null(), "the library returned a null string");
    // SAFETY: a NUL-terminated string from the library, freed right after the copy.
    let out = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
    // SAFETY: returned by the library, not yet freed.
    unsafe { chime_string_free(s) };
    out
}

/// `chime_call_sync` with Rust strings, parsed.
pub fn call_sync(engine: *mut ChimeEngine, method: &str, params: &Value) -> Value {
    let m = CString::new(method).unwrap();
    let p = CString::new(params.to_string()).unwrap();
    // SAFETY: valid NUL-terminated strings; any handle value is accepted.
    let answer = take(unsafe { chime_call_sync(engine, m.as_ptr(), p.as_ptr()) });
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{method} answered {answer:?}: {e}"))
}

/// `chime_create` from a JSON config; panics with the error JSON on failure.
pub fn create(config: &Value) -> *mut ChimeEngine {
    let c = CString::new(config.to_string()).unwrap();
    let mut err: *mut c_char = std::ptr::null_mut();
    // SAFETY: a valid string and a writable error slot.
    let engine = unsafe { chime_create(c.as_ptr(), &mut err) };
    assert!(!engine.is_null(), "chime_create failed: {}", take(err));
    engine
}

/// A config for `data_dir` against `server_url`, with extra fields merged in.
pub fn config(server_url: &str, data_dir: &Path, extra: Value) -> Value {
    let mut c = serde_json::json!({
        "sdk_app_id": chime_tests::APP_ID,
        "server_url": server_url,
        "data_dir": data_dir,
        "log_level": "warn",
    });
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    c
}

/// `target/<profile>`: the running test lives in its `deps/`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// The crate directory (`bindings/`).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
