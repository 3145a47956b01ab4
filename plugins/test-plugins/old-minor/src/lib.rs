//! Test fixture: a content filter that declares ABI 1.0, as a plugin built before the translator
//! and speech-to-text kinds (ABI 1.1) existed. A newer host must still load it: a minor version
//! only appends. It replaces every text by `old:<text>`.

use chime_plugin_api::abi::{
    CHIME_PLUGIN_ABI_MAJOR, CHIME_PLUGIN_KIND_CONTENT_FILTER, ChimeContentFilterVTable,
    ChimePluginDeclaration,
};
use chime_plugin_api::plugin::{filter_create, filter_destroy, filter_filter, free_buf};
use chime_plugin_api::{ContentFilter, ContentKind, Direction, FilterOutcome, PluginCallError};

/// The 1.0 filter.
#[derive(Debug)]
pub struct OldFilter;

impl ContentFilter for OldFilter {
    fn create(_config_json: &str) -> Result<Self, PluginCallError> {
        Ok(OldFilter)
    }

    fn filter(
        &self,
        text: &str,
        _direction: Direction,
        _content: ContentKind,
    ) -> Result<FilterOutcome, PluginCallError> {
        Ok(FilterOutcome::Replaced(format!("old:{text}")))
    }
}

static VTABLE: ChimeContentFilterVTable = ChimeContentFilterVTable {
    struct_size: std::mem::size_of::<ChimeContentFilterVTable>() as u32,
    create: Some(filter_create::<OldFilter>),
    destroy: Some(filter_destroy::<OldFilter>),
    filter: Some(filter_filter::<OldFilter>),
    free_buf: Some(free_buf),
};

static DECLARATION: ChimePluginDeclaration = ChimePluginDeclaration {
    abi_major: CHIME_PLUGIN_ABI_MAJOR,
    abi_minor: 0,
    struct_size: std::mem::size_of::<ChimePluginDeclaration>() as u32,
    kind: CHIME_PLUGIN_KIND_CONTENT_FILTER,
    name: c"old-minor".as_ptr(),
    version: c"1.0.0".as_ptr(),
    vtable: (&raw const VTABLE).cast(),
};

/// The entry symbol, declaring ABI 1.0.
#[unsafe(no_mangle)]
pub extern "C" fn chime_plugin_entry() -> *const ChimePluginDeclaration {
    &DECLARATION
}
