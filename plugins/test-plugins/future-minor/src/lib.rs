//! Test fixture: a plugin that declares ABI 1.99, a minor version newer than the host's. The host
//! must refuse it (it may rely on fields the host does not know) while naming it by its declared
//! name, since a same-major declaration has a known layout.

use std::ffi::c_void;

use chime_plugin_api::abi::{
    CHIME_PLUGIN_ABI_MAJOR, CHIME_PLUGIN_KIND_CONTENT_FILTER, ChimePluginDeclaration,
};

static DECLARATION: ChimePluginDeclaration = ChimePluginDeclaration {
    abi_major: CHIME_PLUGIN_ABI_MAJOR,
    abi_minor: 99,
    struct_size: std::mem::size_of::<ChimePluginDeclaration>() as u32,
    kind: CHIME_PLUGIN_KIND_CONTENT_FILTER,
    name: c"future-minor".as_ptr(),
    version: c"9.9.9".as_ptr(),
    vtable: std::ptr::null::<c_void>(),
};

/// The entry symbol, declaring ABI 1.99.
#[unsafe(no_mangle)]
pub extern "C" fn chime_plugin_entry() -> *const ChimePluginDeclaration {
    &DECLARATION
}
