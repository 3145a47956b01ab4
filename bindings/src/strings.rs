//! C strings across the boundary: reading the host's (null and invalid UTF-8 told apart, never
//! trusted) and handing out ours (allocated here, freed only by `chime_string_free`).

use std::ffi::{CStr, CString, c_char};

/// The version string `chime_version` returns, NUL-terminated, static.
pub const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => c"unknown",
    };

/// A string the host passed.
pub enum Text<'a> {
    /// A null pointer.
    Null,
    /// Bytes that are not UTF-8.
    NotUtf8,
    /// A valid string.
    Str(&'a str),
}

impl Text<'_> {
    /// Reads a NUL-terminated string.
    ///
    /// # Safety
    /// `p` is null or points to a NUL-terminated string that outlives the returned value.
    pub unsafe fn from_ptr<'a>(p: *const c_char) -> Text<'a> {
        if p.is_null() {
            return Text::Null;
        }
        // SAFETY: non-null and NUL-terminated per the contract above.
        match unsafe { CStr::from_ptr(p) }.to_str() {
            Ok(s) => Text::Str(s),
            Err(_) => Text::NotUtf8,
        }
    }
}

/// A C string for the duration of a callback; interior NULs (never produced by JSON encoding) are
/// cut rather than failing.
pub fn owned(s: String) -> CString {
    CString::new(s).unwrap_or_else(|e| {
        let cut = e.nul_position();
        let mut bytes = e.into_vec();
        bytes.truncate(cut);
        CString::new(bytes).unwrap_or_default()
    })
}

/// Hands a string to the host; it frees it with `chime_string_free`.
pub fn to_c_string(s: String) -> *mut c_char {
    owned(s).into_raw()
}

/// Frees a string made by [`to_c_string`].
///
/// # Safety
/// `s` is null or came from [`to_c_string`] and was not freed yet.
pub unsafe fn free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: per the contract, `s` came from `CString::into_raw`.
        drop(unsafe { CString::from_raw(s) });
    }
}
