//! Helpers for one call across the boundary: status codes to errors, plugin buffers to owned data.

use crate::abi::{CHIME_STATUS_OK, CHIME_STATUS_PANICKED, ChimeBuf};
use crate::host::PluginError;
use crate::host::library::PluginLibrary;

/// Copies a plugin-owned buffer and gives it back to the plugin's `free_buf`.
pub(crate) fn take_buf(library: &PluginLibrary, buf: ChimeBuf) -> Vec<u8> {
    if buf.ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: the plugin handed us a live buffer of `len` bytes; we copy it, then free it once
    // with the plugin's own allocator.
    let bytes = unsafe { buf.as_bytes() }.to_vec();
    // SAFETY: as above, freed exactly once.
    unsafe { (library.free_buf)(buf) };
    bytes
}

/// Takes a plugin-owned UTF-8 buffer (lossy for messages, where a bad byte must not hide the error).
pub(crate) fn take_text_lossy(library: &PluginLibrary, buf: ChimeBuf) -> String {
    String::from_utf8_lossy(&take_buf(library, buf)).into_owned()
}

/// Takes a plugin-owned buffer that must be UTF-8.
pub(crate) fn take_text(library: &PluginLibrary, buf: ChimeBuf) -> Result<String, PluginError> {
    String::from_utf8(take_buf(library, buf)).map_err(|_| PluginError::InvalidResult {
        name: library.name.clone(),
        reason: "text is not UTF-8".to_owned(),
    })
}

/// Turns a status and its error buffer into a result, freeing the buffer.
pub(crate) fn check_status(
    library: &PluginLibrary,
    status: i32,
    error: ChimeBuf,
) -> Result<(), PluginError> {
    let message = take_text_lossy(library, error);
    match status {
        CHIME_STATUS_OK => Ok(()),
        CHIME_STATUS_PANICKED => Err(PluginError::Panicked {
            name: library.name.clone(),
            message,
        }),
        status => Err(PluginError::CallFailed {
            name: library.name.clone(),
            status,
            message,
        }),
    }
}

/// The end of a call that answers a result JSON: the status checked (freeing the error buffer,
/// and the result buffer on failure) and the plugin-owned result taken as UTF-8 text.
pub(crate) fn take_result(
    library: &PluginLibrary,
    status: i32,
    error: ChimeBuf,
    result: ChimeBuf,
) -> Result<String, PluginError> {
    if let Err(error) = check_status(library, status, error) {
        take_buf(library, result);
        return Err(error);
    }
    take_text(library, result)
}
