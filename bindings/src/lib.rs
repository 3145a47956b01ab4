//! `chime-bindings`: the Chime C ABI (api.md §2), built as `libchime` (`cdylib` + `staticlib`).
//!
//! A small, fixed set of `extern "C"` functions; everything else is a JSON method of the engine's
//! one dispatch table. `include/chime.h` is generated from this file by cbindgen (a test fails when
//! it is stale). The layer is thin — [`chime_engine::Engine`] does the work — and its one job
//! beyond marshalling is to **never crash the host**:
//!
//! - handles are opaque tokens looked up in a table ([`handles`]), never dereferenced pointers, so
//!   a null, stale, destroyed or twice-destroyed handle answers an error instead of touching freed
//!   memory;
//! - every string is checked (null, invalid UTF-8) and every JSON text parsed before use
//!   (malformed JSON answers 6027, an unknown method 6017 naming it);
//! - every function body runs under `catch_unwind`, so a panic becomes an error code.
//!
//! Ownership: every `char *` this library returns is freed with [`chime_string_free`]; strings
//! passed to callbacks are valid only during the call. Callbacks run on the engine's event thread
//! (`callback_mode: "thread"`) or inside [`chime_poll`] on the host's thread (`"pump"`), in order
//! with the events in both modes.

mod block_on;
mod handles;
mod strings;

use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use chime_engine::{ApiError, Engine, EngineConfig, Event};
use chime_proto::codes;
use serde_json::Value;

use crate::handles::UserData;
use crate::strings::{Text, to_c_string};

/// An engine (one SDK instance) owned by the host. Opaque: only ever handled by pointer, and the
/// pointer is a token, not an address.
pub struct ChimeEngine {
    _opaque: [u8; 0],
}

/// The answer of one [`chime_call`]: `code` 0 = success; `json` is the result object (on success)
/// or `{code, desc}` (on failure). `desc` and `json` are valid only during the call.
pub type ChimeCallback = Option<
    unsafe extern "C" fn(
        code: i32,
        desc: *const c_char,
        json: *const c_char,
        user_data: *mut c_void,
    ),
>;

/// One event (api.md §5): its name and its data object as JSON, valid only during the call.
pub type ChimeEventCallback =
    Option<unsafe extern "C" fn(event: *const c_char, json: *const c_char, user_data: *mut c_void)>;

/// Runs `f`, turning a panic into `fallback`.
fn guarded<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

fn error_json(err: &ApiError) -> String {
    serde_json::json!({ "code": err.code, "desc": err.desc }).to_string()
}

/// Parses `params_json` (null or blank = `{}`); malformed JSON or invalid UTF-8 answers 6027.
fn parse_params(params_json: *const c_char) -> Result<Value, ApiError> {
    // SAFETY: the caller passes a NUL-terminated string or null (api.md §2).
    let text = unsafe { Text::from_ptr(params_json) };
    match text {
        Text::Null => Ok(Value::Object(Default::default())),
        Text::NotUtf8 => Err(ApiError::new(
            codes::ERR_INVALID_JSON,
            "malformed JSON: params_json is not valid UTF-8",
        )),
        Text::Str(s) if s.trim().is_empty() => Ok(Value::Object(Default::default())),
        Text::Str(s) => serde_json::from_str(s)
            .map_err(|e| ApiError::new(codes::ERR_INVALID_JSON, format!("malformed JSON: {e}"))),
    }
}

/// Checks the method name: present, UTF-8, and not one the C ABI does through its own functions.
fn parse_method<'a>(method: *const c_char) -> Result<&'a str, ApiError> {
    // SAFETY: the caller passes a NUL-terminated string or null (api.md §2).
    match unsafe { Text::from_ptr(method) } {
        Text::Null => Err(ApiError::invalid_param("method is null")),
        Text::NotUtf8 => Err(ApiError::invalid_param("method is not valid UTF-8")),
        Text::Str("init_sdk") => Err(ApiError::invalid_param(
            "init_sdk: the C ABI initialises in chime_create",
        )),
        Text::Str("un_init_sdk") => Err(ApiError::invalid_param(
            "un_init_sdk: the C ABI un-initialises in chime_destroy",
        )),
        Text::Str(m) => Ok(m),
    }
}

/// Creates an engine (`init_sdk`) from `config_json` (api.md §2). On failure returns null and, if
/// `error_out` is not null, stores there an error JSON `{code, desc}` to free with
/// [`chime_string_free`] (6027 malformed JSON, 6017 a bad or unknown config field).
///
/// # Safety
/// `config_json` is null or a NUL-terminated string; `error_out` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chime_create(
    config_json: *const c_char,
    error_out: *mut *mut c_char,
) -> *mut ChimeEngine {
    let created = guarded(
        Err(ApiError::new(
            codes::ERR_SDK_INTERNAL,
            "chime_create panicked",
        )),
        || {
            // SAFETY: forwarded from the caller.
            let config = match unsafe { Text::from_ptr(config_json) } {
                Text::Null => return Err(ApiError::invalid_param("config_json is null")),
                Text::NotUtf8 => {
                    return Err(ApiError::new(
                        codes::ERR_INVALID_JSON,
                        "malformed JSON: config_json is not valid UTF-8",
                    ));
                }
                Text::Str(s) => s,
            };
            let value: Value = serde_json::from_str(config).map_err(|e| {
                ApiError::new(codes::ERR_INVALID_JSON, format!("malformed JSON: {e}"))
            })?;
            let config: EngineConfig = serde_json::from_value(value)
                .map_err(|e| ApiError::invalid_param(format!("config_json: {e}")))?;
            let engine = Engine::init(config)?;
            Ok(handles::insert(engine))
        },
    );
    match created {
        Ok(handle) => handle,
        Err(err) => {
            if !error_out.is_null() {
                // SAFETY: the caller passes a writable `char **` or null (checked).
                unsafe { *error_out = to_c_string(error_json(&err)) };
            }
            std::ptr::null_mut()
        }
    }
}

/// Destroys an engine (`un_init_sdk`): logs out, stops it, closes its store. Before it returns,
/// every call still in flight has had its callback (6013 if cut short) and, in pump mode, every
/// queued callback and event has run on the calling thread. Null, unknown and already destroyed
/// handles are ignored.
///
/// # Safety
/// Any pointer value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chime_destroy(engine: *mut ChimeEngine) {
    guarded((), || {
        if let Some(engine) = handles::remove(engine) {
            block_on::block_on(engine.shutdown());
            engine.set_event_handler(None);
            // Pump mode: hand the host what is left (thread mode: already delivered).
            let mut bounded = 0;
            while engine.poll(1024) > 0 && bounded < 1_000_000 {
                bounded += 1;
            }
        }
    })
}

/// Calls `method` asynchronously with `params_json` (null = `{}`). Returns 0 if accepted: `cb`
/// (if not null) is then called exactly once with the answer. Otherwise returns an error code and
/// `cb` is never called: 6027 malformed JSON, 6017 a null or invalid method name, 6013 a null,
/// unknown or destroyed handle. An unknown method is accepted and answers 6017 naming it.
///
/// # Safety
/// `method`, `params_json` are null or NUL-terminated; `user_data` is passed back untouched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chime_call(
    engine: *mut ChimeEngine,
    method: *const c_char,
    params_json: *const c_char,
    cb: ChimeCallback,
    user_data: *mut c_void,
) -> i32 {
    guarded(codes::ERR_SDK_INTERNAL, || {
        let engine = match handles::get(engine) {
            Ok(e) => e,
            Err(err) => return err.code,
        };
        let method = match parse_method(method) {
            Ok(m) => m,
            Err(err) => return err.code,
        };
        let params = match parse_params(params_json) {
            Ok(p) => p,
            Err(err) => return err.code,
        };
        let user_data = UserData(user_data);
        let done = move |outcome: Result<Value, ApiError>| {
            let Some(cb) = cb else { return };
            let (code, desc, json) = match outcome {
                Ok(result) => (0, String::new(), result.to_string()),
                Err(err) => (err.code, err.desc.clone(), error_json(&err)),
            };
            let desc = strings::owned(desc);
            let json = strings::owned(json);
            // SAFETY: the host gave us this callback for exactly this call; the strings live
            // until it returns.
            unsafe { cb(code, desc.as_ptr(), json.as_ptr(), user_data.get()) };
        };
        match engine.call_with(method, params, done) {
            Ok(()) => 0,
            Err(err) => err.code,
        }
    })
}

/// Calls `method` and blocks until the answer: the result JSON, or an error JSON `{code, desc}`
/// (the same codes as [`chime_call`]). Never null; free it with [`chime_string_free`]. Do not call
/// it from a thread that must run for the answer to come (none of the engine's own threads need
/// the host, so any host thread, callbacks included, may call it).
///
/// # Safety
/// `method`, `params_json` are null or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chime_call_sync(
    engine: *mut ChimeEngine,
    method: *const c_char,
    params_json: *const c_char,
) -> *mut c_char {
    let answer = guarded(
        Err(ApiError::new(
            codes::ERR_SDK_INTERNAL,
            "chime_call_sync panicked",
        )),
        || {
            let engine = handles::get(engine)?;
            let method = parse_method(method)?;
            let params = parse_params(params_json)?;
            engine.call_blocking(method, params)
        },
    );
    to_c_string(match answer {
        Ok(result) => result.to_string(),
        Err(err) => error_json(&err),
    })
}

/// Sets (or, with a null `cb`, clears) the event callback: every event of api.md §5 in order,
/// with its data object as JSON. Ignored for null, unknown or destroyed handles.
///
/// # Safety
/// `user_data` is passed back untouched, from the thread that delivers events.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chime_set_event_callback(
    engine: *mut ChimeEngine,
    cb: ChimeEventCallback,
    user_data: *mut c_void,
) {
    guarded((), || {
        let Ok(engine) = handles::get(engine) else {
            return;
        };
        let handler = cb.map(|cb| {
            let user_data = UserData(user_data);
            Arc::new(move |event: Event| {
                let name = strings::owned(event.name);
                let json = strings::owned(event.data.to_string());
                // SAFETY: the host registered this callback; the strings live until it returns.
                unsafe { cb(name.as_ptr(), json.as_ptr(), user_data.get()) };
            }) as chime_engine::EventHandler
        });
        engine.set_event_handler(handler);
    })
}

/// Pump mode: runs up to `max` queued callbacks and events on the calling thread, in order, and
/// returns how many ran (0 in thread mode, or when `max` <= 0). A null, unknown or destroyed
/// handle returns -6013.
///
/// # Safety
/// Any pointer value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chime_poll(engine: *mut ChimeEngine, max: i32) -> i32 {
    guarded(-codes::ERR_SDK_INTERNAL, || {
        let engine = match handles::get(engine) {
            Ok(e) => e,
            Err(err) => return -err.code,
        };
        let max = usize::try_from(max).unwrap_or(0);
        i32::try_from(engine.poll(max)).unwrap_or(i32::MAX)
    })
}

/// Frees a string returned by this library. Null is ignored.
///
/// # Safety
/// `s` is null or a string returned by this library and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chime_string_free(s: *mut c_char) {
    guarded((), || {
        // SAFETY: forwarded from the caller.
        unsafe { strings::free(s) }
    })
}

/// The library's version, a static string (never freed).
#[unsafe(no_mangle)]
pub extern "C" fn chime_version() -> *const c_char {
    strings::VERSION.as_ptr()
}
