//! Test fixture: a plugin that declares ABI 99.0, which no host speaks. Written by hand (not with
//! the export macro, which always declares the current ABI) so the host's refusal can be tested on
//! a real library.

use std::ffi::c_void;

use chime_plugin_api::abi::{CHIME_PLUGIN_KIND_CONTENT_FILTER, ChimePluginDeclaration};

static DECLARATION: ChimePluginDeclaration = ChimePluginDeclaration {
    abi_major: 99,
    abi_minor: 0,
    struct_size: std::mem::size_of::<ChimePluginDeclaration>() as u32,
    kind: CHIME_PLUGIN_KIND_CONTENT_FILTER,
    name: c"bad-abi".as_ptr(),
    version: c"0.0.0".as_ptr(),
    vtable: std::ptr::null::<c_void>(),
};

/// The entry symbol, declaring ABI 99.0.
#[unsafe(no_mangle)]
pub extern "C" fn chime_plugin_entry() -> *const ChimePluginDeclaration {
    &DECLARATION
}
