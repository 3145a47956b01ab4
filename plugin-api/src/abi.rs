//! The C ABI of Chime plugins: every type and constant that crosses the library boundary.
//!
//! This module is the contract. `include/chime_plugin.h` is generated from it by cbindgen (a test
//! fails when the checked-in header drifts), so a plugin can be written in C or C++ as well as in
//! Rust. Nothing here is a Rust-only type: no `String`, `Vec`, `Box`, trait object or allocator
//! crosses the boundary, only integers, raw pointers, `(ptr, len)` pairs and `extern "C"` function
//! pointers.
//!
//! # Shape
//!
//! A plugin library exports one symbol, [`CHIME_PLUGIN_ENTRY_SYMBOL`] (`chime_plugin_entry`), of
//! type [`ChimePluginEntryFn`]. It returns a pointer to a static [`ChimePluginDeclaration`]: the
//! ABI version the plugin was built against, the size of the declaration, the plugin's kind
//! (`CHIME_PLUGIN_KIND_*`), its name and version, and a pointer to the kind's vtable
//! ([`ChimeContentFilterVTable`], [`ChimeTransportVTable`], [`ChimeUploaderVTable`],
//! [`ChimeTranslatorVTable`], [`ChimeSpeechToTextVTable`]). Every vtable
//! starts with its own `struct_size` and has `create` (config JSON → instance), `destroy`, the
//! kind's operations and `free_buf`.
//!
//! # Ownership
//!
//! - [`ChimeStr`] is *borrowed*: the caller owns it and it is valid only for the duration of the
//!   call. The callee copies what it wants to keep.
//! - [`ChimeBuf`] is *owned by the plugin that allocated it*: whenever a plugin hands a buffer to the
//!   host (an error message, a replaced text, a result JSON), the host gives it back through the
//!   same vtable's `free_buf` exactly once. The host never frees plugin memory with its own
//!   allocator and the plugin never frees host memory.
//! - Instance and connection handles are opaque `void *` owned by the plugin; the host ends them
//!   with `destroy` / `close` exactly once, after its last call on them has returned.
//!
//! # Versioning
//!
//! The host refuses a plugin whose `abi_major` differs from [`CHIME_PLUGIN_ABI_MAJOR`], or whose
//! `abi_minor` is newer than the host's [`CHIME_PLUGIN_ABI_MINOR`]. A minor version may only append
//! fields at the end of the declaration or of a vtable (which is why each carries its size) and add
//! new kinds; it never changes an existing field. Kinds are plain `uint32_t` constants, not a C
//! enum, so an unknown kind is a value the host can refuse rather than undefined behaviour.
//!
//! # Status codes
//!
//! Every fallible call returns an `int32_t` status: [`CHIME_STATUS_OK`] or one of the
//! `CHIME_STATUS_*` error codes, in which case the plugin may put a UTF-8 message in the
//! `out_error` buffer (freed by the host through `free_buf`).

use std::ffi::{c_char, c_void};

/// The ABI major version this crate speaks. A plugin with another major is refused.
pub const CHIME_PLUGIN_ABI_MAJOR: u32 = 1;
/// The ABI minor version this crate speaks. A plugin with a newer minor is refused.
///
/// History: 1.0 content filter, transport, uploader; 1.1 adds the translator and speech-to-text
/// kinds ([`ChimeTranslatorVTable`], [`ChimeSpeechToTextVTable`]). A 1.0 plugin still loads.
pub const CHIME_PLUGIN_ABI_MINOR: u32 = 1;

/// The name of the one symbol a plugin library exports (without the NUL terminator).
pub const CHIME_PLUGIN_ENTRY_SYMBOL: &str = "chime_plugin_entry";

/// Kind: a transport (for example QUIC) that carries the engine's frames to the server.
pub const CHIME_PLUGIN_KIND_TRANSPORT: u32 = 1;
/// Kind: an uploader that moves media files to and from the file store, with progress.
pub const CHIME_PLUGIN_KIND_UPLOADER: u32 = 2;
/// Kind: a content filter applied to message text before send and optionally on receipt.
pub const CHIME_PLUGIN_KIND_CONTENT_FILTER: u32 = 3;
/// Kind (ABI 1.1): a translator serving `translate_text` ([`ChimeTranslatorVTable`]).
pub const CHIME_PLUGIN_KIND_TRANSLATOR: u32 = 4;
/// Kind (ABI 1.1): speech-to-text serving `convert_voice_to_text` ([`ChimeSpeechToTextVTable`]).
pub const CHIME_PLUGIN_KIND_SPEECH_TO_TEXT: u32 = 5;

/// Status: the call succeeded.
pub const CHIME_STATUS_OK: i32 = 0;
/// Status: the call failed; `out_error` says why.
pub const CHIME_STATUS_FAILED: i32 = 1;
/// Status: the plugin panicked (or threw) and caught it at the boundary.
pub const CHIME_STATUS_PANICKED: i32 = 2;
/// Status: an argument was invalid (bad JSON, non-UTF-8 text, null pointer).
pub const CHIME_STATUS_INVALID_ARGUMENT: i32 = 3;
/// Status: the operation is not supported by this plugin.
pub const CHIME_STATUS_UNSUPPORTED: i32 = 4;
/// Status: the operation was cancelled (uploader `cancel`).
pub const CHIME_STATUS_CANCELLED: i32 = 5;
/// Status: the connection is closed (transport).
pub const CHIME_STATUS_CLOSED: i32 = 6;

/// Content-filter direction: text the local user is about to send.
pub const CHIME_FILTER_OUTGOING: u32 = 0;
/// Content-filter direction: text received from someone else.
pub const CHIME_FILTER_INCOMING: u32 = 1;

/// Content-filter field: the text of a text element (including @ messages).
pub const CHIME_CONTENT_TEXT: u32 = 0;
/// Content-filter field: the `description` of a custom element.
pub const CHIME_CONTENT_CUSTOM_DESCRIPTION: u32 = 1;

/// Content-filter action: the text passes unchanged.
pub const CHIME_FILTER_PASS: u32 = 0;
/// Content-filter action: the text is replaced by `ChimeFilterResult::text`.
pub const CHIME_FILTER_REPLACED: u32 = 1;
/// Content-filter action: the send is blocked; `ChimeFilterResult::text` is the reason.
pub const CHIME_FILTER_BLOCKED: u32 = 2;

/// Transport event: a binary frame arrived (`data` is the frame).
pub const CHIME_TRANSPORT_EVENT_FRAME: u32 = 0;
/// Transport event: the connection closed (`data` is a UTF-8 reason, possibly empty). Last event.
pub const CHIME_TRANSPORT_EVENT_CLOSED: u32 = 1;
/// Transport event: a non-fatal error worth reporting (`data` is a UTF-8 message).
pub const CHIME_TRANSPORT_EVENT_ERROR: u32 = 2;

/// Borrowed bytes or UTF-8 text: valid only during the call that receives it.
///
/// `ptr` may be null only when `len` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ChimeStr {
    /// First byte.
    pub ptr: *const u8,
    /// Length in bytes (no NUL terminator).
    pub len: usize,
}

/// Bytes or UTF-8 text allocated by a plugin and handed to the host, which returns it through the
/// same vtable's `free_buf` exactly once. An empty buffer has a null `ptr` and needs no freeing
/// (freeing it is harmless).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ChimeBuf {
    /// First byte (null when empty).
    pub ptr: *mut u8,
    /// Length in bytes.
    pub len: usize,
}

/// The static description a plugin's entry symbol returns.
#[repr(C)]
#[derive(Debug)]
pub struct ChimePluginDeclaration {
    /// [`CHIME_PLUGIN_ABI_MAJOR`] as the plugin was built.
    pub abi_major: u32,
    /// [`CHIME_PLUGIN_ABI_MINOR`] as the plugin was built.
    pub abi_minor: u32,
    /// `sizeof(ChimePluginDeclaration)` as the plugin was built.
    pub struct_size: u32,
    /// One of the `CHIME_PLUGIN_KIND_*` constants.
    pub kind: u32,
    /// The plugin's name: a static NUL-terminated UTF-8 string.
    pub name: *const c_char,
    /// The plugin's version: a static NUL-terminated UTF-8 string.
    pub version: *const c_char,
    /// The kind's vtable (`ChimeContentFilterVTable *` etc.), static.
    pub vtable: *const c_void,
}

/// The entry symbol's type: `const ChimePluginDeclaration *chime_plugin_entry(void)`.
pub type ChimePluginEntryFn = unsafe extern "C" fn() -> *const ChimePluginDeclaration;

/// `create`: build an instance from its JSON config. On success stores the handle in
/// `out_instance` and returns [`CHIME_STATUS_OK`]; otherwise returns an error status and may set
/// `out_error`.
pub type ChimeCreateFn = Option<
    unsafe extern "C" fn(
        config_json: ChimeStr,
        out_instance: *mut *mut c_void,
        out_error: *mut ChimeBuf,
    ) -> i32,
>;

/// `destroy`: end an instance. Called once, after every other call on it has returned.
pub type ChimeDestroyFn = Option<unsafe extern "C" fn(instance: *mut c_void)>;

/// `free_buf`: give back a buffer the plugin allocated.
pub type ChimeFreeBufFn = Option<unsafe extern "C" fn(buf: ChimeBuf)>;

/// The outcome of a content-filter call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ChimeFilterResult {
    /// One of `CHIME_FILTER_PASS`, `CHIME_FILTER_REPLACED`, `CHIME_FILTER_BLOCKED`.
    pub action: u32,
    /// The replaced text (`REPLACED`) or the reason (`BLOCKED`); plugin-owned, freed by `free_buf`.
    pub text: ChimeBuf,
}

/// `filter`: judge one text. `direction` is a `CHIME_FILTER_*` direction, `content` a
/// `CHIME_CONTENT_*` field; a plugin passes content kinds it does not know.
pub type ChimeFilterFn = Option<
    unsafe extern "C" fn(
        instance: *mut c_void,
        text: ChimeStr,
        direction: u32,
        content: u32,
        out_result: *mut ChimeFilterResult,
        out_error: *mut ChimeBuf,
    ) -> i32,
>;

/// The vtable of a content-filter plugin (`CHIME_PLUGIN_KIND_CONTENT_FILTER`).
///
/// Calls on one instance may come from several threads at once: the instance must be thread-safe.
#[repr(C)]
#[derive(Debug)]
pub struct ChimeContentFilterVTable {
    /// `sizeof(ChimeContentFilterVTable)` as the plugin was built.
    pub struct_size: u32,
    /// Build an instance.
    pub create: ChimeCreateFn,
    /// End an instance.
    pub destroy: ChimeDestroyFn,
    /// Judge one text.
    pub filter: ChimeFilterFn,
    /// Free a buffer this plugin returned.
    pub free_buf: ChimeFreeBufFn,
}

/// Transport event callback, registered by the host at `connect`. The plugin may call it from any
/// thread, one call at a time per connection, never after `close` has returned. `data` is
/// borrowed for the duration of the call. `event` is a `CHIME_TRANSPORT_EVENT_*` constant.
pub type ChimeTransportEventFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: u32, data: ChimeStr)>;

/// `connect`: open a connection to `url` (with per-connection `options_json`, `{}` when none).
/// Events arrive through `on_event(user_data, ...)`. On success stores the connection handle in
/// `out_connection`.
pub type ChimeConnectFn = Option<
    unsafe extern "C" fn(
        instance: *mut c_void,
        url: ChimeStr,
        options_json: ChimeStr,
        on_event: ChimeTransportEventFn,
        user_data: *mut c_void,
        out_connection: *mut *mut c_void,
        out_error: *mut ChimeBuf,
    ) -> i32,
>;

/// `send`: send one binary frame on a connection (may be called from several threads).
pub type ChimeSendFn = Option<
    unsafe extern "C" fn(connection: *mut c_void, frame: ChimeStr, out_error: *mut ChimeBuf) -> i32,
>;

/// `close`: close and free a connection. After it returns the plugin makes no further call of the
/// connection's event callback, and the handle is dead.
pub type ChimeCloseFn = Option<unsafe extern "C" fn(connection: *mut c_void)>;

/// The vtable of a transport plugin (`CHIME_PLUGIN_KIND_TRANSPORT`).
#[repr(C)]
#[derive(Debug)]
pub struct ChimeTransportVTable {
    /// `sizeof(ChimeTransportVTable)` as the plugin was built.
    pub struct_size: u32,
    /// Build an instance.
    pub create: ChimeCreateFn,
    /// End an instance (after every connection it opened is closed).
    pub destroy: ChimeDestroyFn,
    /// Open a connection.
    pub connect: ChimeConnectFn,
    /// Send a frame.
    pub send: ChimeSendFn,
    /// Close and free a connection.
    pub close: ChimeCloseFn,
    /// Free a buffer this plugin returned.
    pub free_buf: ChimeFreeBufFn,
}

/// Uploader progress callback: `done` of `total` bytes of task `task_id` (`total` is 0 when
/// unknown). Called from the thread running the transfer; `user_data` is the host's.
pub type ChimeProgressFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, task_id: u64, done: u64, total: u64)>;

/// `upload` / `download`: move one file, blocking until done, failed or cancelled. `task_id` is
/// chosen by the host and names the transfer for `cancel`. `local_path` is the file to read
/// (upload) or write (download); `url` the remote side; `options_json` per-transfer options such
/// as a token. On success stores a plugin-owned JSON result in `out_result_json`.
pub type ChimeTransferFn = Option<
    unsafe extern "C" fn(
        instance: *mut c_void,
        task_id: u64,
        local_path: ChimeStr,
        url: ChimeStr,
        options_json: ChimeStr,
        on_progress: ChimeProgressFn,
        user_data: *mut c_void,
        out_result_json: *mut ChimeBuf,
        out_error: *mut ChimeBuf,
    ) -> i32,
>;

/// `cancel`: ask a running transfer to stop; called from another thread while it runs. The
/// transfer then returns [`CHIME_STATUS_CANCELLED`]. Cancelling an unknown task is not an error.
pub type ChimeCancelFn = Option<unsafe extern "C" fn(instance: *mut c_void, task_id: u64) -> i32>;

/// The vtable of an uploader plugin (`CHIME_PLUGIN_KIND_UPLOADER`).
#[repr(C)]
#[derive(Debug)]
pub struct ChimeUploaderVTable {
    /// `sizeof(ChimeUploaderVTable)` as the plugin was built.
    pub struct_size: u32,
    /// Build an instance.
    pub create: ChimeCreateFn,
    /// End an instance.
    pub destroy: ChimeDestroyFn,
    /// Upload a local file.
    pub upload: ChimeTransferFn,
    /// Download to a local file.
    pub download: ChimeTransferFn,
    /// Cancel a running transfer.
    pub cancel: ChimeCancelFn,
    /// Free a buffer this plugin returned.
    pub free_buf: ChimeFreeBufFn,
}

/// `translate`: translate a batch of texts, blocking (a real translator calls a web service).
/// `request_json` is `{"texts": [string...], "source_language": string (absent or "" = detect),
/// "target_language": string}`. On success stores a plugin-owned JSON result in
/// `out_result_json`: `{"target_texts": [string...]}`, one translation per source text, in order.
pub type ChimeTranslateFn = Option<
    unsafe extern "C" fn(
        instance: *mut c_void,
        request_json: ChimeStr,
        out_result_json: *mut ChimeBuf,
        out_error: *mut ChimeBuf,
    ) -> i32,
>;

/// The vtable of a translator plugin (`CHIME_PLUGIN_KIND_TRANSLATOR`, ABI 1.1).
///
/// Calls on one instance may come from several threads at once: the instance must be thread-safe.
#[repr(C)]
#[derive(Debug)]
pub struct ChimeTranslatorVTable {
    /// `sizeof(ChimeTranslatorVTable)` as the plugin was built.
    pub struct_size: u32,
    /// Build an instance.
    pub create: ChimeCreateFn,
    /// End an instance.
    pub destroy: ChimeDestroyFn,
    /// Translate texts.
    pub translate: ChimeTranslateFn,
    /// Free a buffer this plugin returned.
    pub free_buf: ChimeFreeBufFn,
}

/// `convert`: recognise the speech in a local audio file, blocking. `audio_path` is the file (the
/// host has downloaded it); `options_json` is `{"language": string}` (absent = the plugin's
/// default). On success stores a plugin-owned JSON result in `out_result_json`: `{"text": string}`.
pub type ChimeConvertVoiceFn = Option<
    unsafe extern "C" fn(
        instance: *mut c_void,
        audio_path: ChimeStr,
        options_json: ChimeStr,
        out_result_json: *mut ChimeBuf,
        out_error: *mut ChimeBuf,
    ) -> i32,
>;

/// The vtable of a speech-to-text plugin (`CHIME_PLUGIN_KIND_SPEECH_TO_TEXT`, ABI 1.1).
///
/// Calls on one instance may come from several threads at once: the instance must be thread-safe.
#[repr(C)]
#[derive(Debug)]
pub struct ChimeSpeechToTextVTable {
    /// `sizeof(ChimeSpeechToTextVTable)` as the plugin was built.
    pub struct_size: u32,
    /// Build an instance.
    pub create: ChimeCreateFn,
    /// End an instance.
    pub destroy: ChimeDestroyFn,
    /// Convert one audio file to text.
    pub convert: ChimeConvertVoiceFn,
    /// Free a buffer this plugin returned.
    pub free_buf: ChimeFreeBufFn,
}

impl ChimeStr {
    /// Borrows `bytes` for one call.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// The bytes this points at.
    ///
    /// # Safety
    /// `ptr` must be valid for `len` bytes for the lifetime `'a` (or `len` must be 0).
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees `ptr` is valid for `len` bytes.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

impl ChimeBuf {
    /// The empty buffer (null pointer, nothing to free).
    pub const EMPTY: ChimeBuf = ChimeBuf {
        ptr: std::ptr::null_mut(),
        len: 0,
    };

    /// Moves `bytes` into a buffer allocated by this library's allocator. Give it back to
    /// [`ChimeBuf::free`] in the same library.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        if bytes.is_empty() {
            return Self::EMPTY;
        }
        let boxed = bytes.into_boxed_slice();
        let len = boxed.len();
        let ptr = Box::into_raw(boxed).cast::<u8>();
        Self { ptr, len }
    }

    /// Frees a buffer made by [`ChimeBuf::from_vec`] in this same library.
    ///
    /// # Safety
    /// `self` must come from `from_vec` in this library and not have been freed yet.
    pub unsafe fn free(self) {
        if !self.ptr.is_null() {
            let slice = std::ptr::slice_from_raw_parts_mut(self.ptr, self.len);
            // SAFETY: `from_vec` made this pointer from a `Box<[u8]>` of exactly `len` bytes.
            drop(unsafe { Box::from_raw(slice) });
        }
    }

    /// Views the buffer's bytes.
    ///
    /// # Safety
    /// The buffer must be live (not freed) and valid for `len` bytes for the lifetime `'a`.
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees the buffer is live.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

// SAFETY: a declaration is immutable static data (string literals and a static vtable).
unsafe impl Sync for ChimePluginDeclaration {}

/// Names the non-null function type inside a nullable `Chime*Fn` alias ([`Raw`]).
pub trait NullableFn {
    /// The function pointer type.
    type Fn: Copy;
}

impl<F: Copy> NullableFn for Option<F> {
    type Fn = F;
}

/// The function type of a `Chime*Fn` alias once checked non-null: `Raw<ChimeCreateFn>`.
pub type Raw<T> = <T as NullableFn>::Fn;
