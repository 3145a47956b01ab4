//! Loading plugin libraries: the process-wide registry, declaration checks and live instances.
//!
//! # Libraries are never unloaded
//!
//! A plugin's code may still be running on an abandoned call thread (a call that timed out), in a
//! transport's reader thread, or in a destructor, long after the host stopped caring about it.
//! Unloading the library under it would be a use-after-free of code. So every library that loaded
//! successfully goes into a process-wide registry, keyed by its canonical path, and stays there
//! (and mapped) until the process exits; a library that loaded but was refused (wrong ABI, no
//! entry symbol) is leaked for the same reason, since its initialisers have run. The registry also
//! makes two hosts (two engines) in one process share one library: they each create their own
//! instance from the same loaded code.

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::abi::{
    CHIME_PLUGIN_ABI_MAJOR, CHIME_PLUGIN_ABI_MINOR, CHIME_PLUGIN_KIND_CONTENT_FILTER,
    CHIME_PLUGIN_KIND_SPEECH_TO_TEXT, CHIME_PLUGIN_KIND_TRANSLATOR, CHIME_PLUGIN_KIND_TRANSPORT,
    CHIME_PLUGIN_KIND_UPLOADER, ChimeCancelFn, ChimeCloseFn, ChimeConnectFn,
    ChimeContentFilterVTable, ChimeConvertVoiceFn, ChimeCreateFn, ChimeDestroyFn, ChimeFilterFn,
    ChimeFreeBufFn, ChimePluginDeclaration, ChimePluginEntryFn, ChimeSendFn,
    ChimeSpeechToTextVTable, ChimeTransferFn, ChimeTranslateFn, ChimeTranslatorVTable,
    ChimeTransportVTable, ChimeUploaderVTable, Raw,
};
use crate::host::PluginError;
use crate::host::info::PluginKind;

/// The content-filter functions, checked non-null.
#[derive(Clone, Copy)]
pub(crate) struct FilterFns {
    pub filter: Raw<ChimeFilterFn>,
}

/// The transport functions, checked non-null.
#[derive(Clone, Copy)]
pub(crate) struct TransportFns {
    pub connect: Raw<ChimeConnectFn>,
    pub send: Raw<ChimeSendFn>,
    pub close: Raw<ChimeCloseFn>,
}

/// The uploader functions, checked non-null.
#[derive(Clone, Copy)]
pub(crate) struct UploaderFns {
    pub upload: Raw<ChimeTransferFn>,
    pub download: Raw<ChimeTransferFn>,
    pub cancel: Raw<ChimeCancelFn>,
}

/// The translator function, checked non-null.
#[derive(Clone, Copy)]
pub(crate) struct TranslatorFns {
    pub translate: Raw<ChimeTranslateFn>,
}

/// The speech-to-text function, checked non-null.
#[derive(Clone, Copy)]
pub(crate) struct SpeechFns {
    pub convert: Raw<ChimeConvertVoiceFn>,
}

/// The kind-specific part of a loaded library.
#[derive(Clone, Copy)]
pub(crate) enum KindFns {
    ContentFilter(FilterFns),
    Transport(TransportFns),
    Uploader(UploaderFns),
    Translator(TranslatorFns),
    SpeechToText(SpeechFns),
}

/// A loaded, checked plugin library. Lives in the registry for the rest of the process.
pub(crate) struct PluginLibrary {
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    pub create: Raw<ChimeCreateFn>,
    pub destroy: Raw<ChimeDestroyFn>,
    pub free_buf: Raw<ChimeFreeBufFn>,
    pub fns: KindFns,
    /// Kept so the mapping is owned by someone; never dropped (the registry is never emptied).
    _library: libloading::Library,
}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

type Registry = Mutex<HashMap<PathBuf, Arc<PluginLibrary>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Loads (or finds already loaded) the plugin library at `path`.
pub(crate) fn load_library(path: &Path) -> Result<Arc<PluginLibrary>, PluginError> {
    if !path.is_file() {
        return Err(PluginError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let canonical = path
        .canonicalize()
        .map_err(|error| PluginError::LoadFailed {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
    let mut libraries = match registry().lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(library) = libraries.get(&canonical) {
        return Ok(Arc::clone(library));
    }
    // SAFETY: loading a library runs its initialisers; that is what loading a plugin means, and
    // the configured path is trusted by whoever configured the engine.
    let library = unsafe { libloading::Library::new(&canonical) }.map_err(|error| {
        PluginError::LoadFailed {
            path: path.to_path_buf(),
            reason: error.to_string(),
        }
    })?;
    match read_declaration(&library, path) {
        Ok(checked) => {
            let loaded = Arc::new(PluginLibrary {
                path: canonical.clone(),
                name: checked.name,
                version: checked.version,
                kind: checked.kind,
                create: checked.create,
                destroy: checked.destroy,
                free_buf: checked.free_buf,
                fns: checked.fns,
                _library: library,
            });
            libraries.insert(canonical, Arc::clone(&loaded));
            Ok(loaded)
        }
        Err(error) => {
            // Its initialisers ran and it may have started threads: never unload it.
            std::mem::forget(library);
            Err(error)
        }
    }
}

struct Checked {
    name: String,
    version: String,
    kind: PluginKind,
    create: Raw<ChimeCreateFn>,
    destroy: Raw<ChimeDestroyFn>,
    free_buf: Raw<ChimeFreeBufFn>,
    fns: KindFns,
}

fn invalid(path: &Path, reason: impl Into<String>) -> PluginError {
    PluginError::InvalidDeclaration {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a static NUL-terminated UTF-8 string of the declaration.
///
/// # Safety
/// `text` is null or a NUL-terminated string that lives as long as the library.
unsafe fn static_str(text: *const c_char, what: &str, path: &Path) -> Result<String, PluginError> {
    if text.is_null() {
        return Err(invalid(path, format!("{what} is null")));
    }
    // SAFETY: the ABI requires a NUL-terminated static string.
    let text = unsafe { CStr::from_ptr(text) };
    let text = text
        .to_str()
        .map_err(|_| invalid(path, format!("{what} is not UTF-8")))?;
    if text.is_empty() {
        return Err(invalid(path, format!("{what} is empty")));
    }
    Ok(text.to_owned())
}

fn read_declaration(library: &libloading::Library, path: &Path) -> Result<Checked, PluginError> {
    let symbol = format!("{}\0", crate::abi::CHIME_PLUGIN_ENTRY_SYMBOL);
    // SAFETY: the symbol's type is the ABI's entry type; a library exporting this name with
    // another type is not a Chime plugin and breaks the contract it claims.
    let entry =
        unsafe { library.get::<ChimePluginEntryFn>(symbol.as_bytes()) }.map_err(|error| {
            PluginError::MissingSymbol {
                path: path.to_path_buf(),
                reason: error.to_string(),
            }
        })?;
    // SAFETY: the entry takes no arguments and returns a pointer to static data.
    let declaration = unsafe { entry() };
    if declaration.is_null() {
        return Err(invalid(path, "chime_plugin_entry returned null"));
    }
    // The first four fields (ABI major/minor, size, kind) are fixed for every ABI version, so read
    // and check them before trusting the rest of the struct.
    // SAFETY: non-null, static, and every ABI version starts with these four `u32`s.
    let head = unsafe { std::slice::from_raw_parts(declaration.cast::<u32>(), 4) };
    let (abi_major, abi_minor, struct_size, kind) = (head[0], head[1], head[2], head[3]);
    if abi_major != CHIME_PLUGIN_ABI_MAJOR || abi_minor > CHIME_PLUGIN_ABI_MINOR {
        let file_name = path.file_name().map_or_else(
            || path.display().to_string(),
            |file| file.to_string_lossy().into_owned(),
        );
        // Past the head, only a declaration of the same major has a layout we know (a newer
        // minor only appends): name the plugin by its declared name there, by file otherwise.
        let same_major_layout = abi_major == CHIME_PLUGIN_ABI_MAJOR
            && (struct_size as usize) >= std::mem::size_of::<ChimePluginDeclaration>();
        let name = if same_major_layout {
            // SAFETY: same major and a large enough struct: the 1.x fields are there.
            let name_ptr = unsafe { (*declaration).name };
            // SAFETY: the ABI requires a static NUL-terminated string.
            unsafe { static_str(name_ptr, "name", path) }.unwrap_or(file_name)
        } else {
            file_name
        };
        return Err(PluginError::AbiMismatch {
            name,
            path: path.to_path_buf(),
            found_major: abi_major,
            found_minor: abi_minor,
            host_major: CHIME_PLUGIN_ABI_MAJOR,
            host_minor: CHIME_PLUGIN_ABI_MINOR,
        });
    }
    if (struct_size as usize) < std::mem::size_of::<ChimePluginDeclaration>() {
        return Err(invalid(
            path,
            format!("declaration size {struct_size} is too small"),
        ));
    }
    // SAFETY: same major, size checked: the whole 1.x declaration is there.
    let declaration = unsafe { &*declaration };
    // SAFETY: the ABI requires static NUL-terminated strings.
    let name = unsafe { static_str(declaration.name, "name", path)? };
    // SAFETY: as above.
    let version = unsafe { static_str(declaration.version, "version", path)? };
    let vtable = declaration.vtable;
    if vtable.is_null() {
        return Err(invalid(path, format!("plugin {name}: vtable is null")));
    }
    let missing = |function: &str| invalid(path, format!("plugin {name}: `{function}` is null"));
    match kind {
        CHIME_PLUGIN_KIND_CONTENT_FILTER => {
            // SAFETY: the kind says which vtable this is; its size is checked before reading.
            let table = unsafe { checked_vtable::<ChimeContentFilterVTable>(vtable, path, &name)? };
            Ok(Checked {
                kind: PluginKind::ContentFilter,
                create: table.create.ok_or_else(|| missing("create"))?,
                destroy: table.destroy.ok_or_else(|| missing("destroy"))?,
                free_buf: table.free_buf.ok_or_else(|| missing("free_buf"))?,
                fns: KindFns::ContentFilter(FilterFns {
                    filter: table.filter.ok_or_else(|| missing("filter"))?,
                }),
                name,
                version,
            })
        }
        CHIME_PLUGIN_KIND_TRANSPORT => {
            // SAFETY: as above.
            let table = unsafe { checked_vtable::<ChimeTransportVTable>(vtable, path, &name)? };
            Ok(Checked {
                kind: PluginKind::Transport,
                create: table.create.ok_or_else(|| missing("create"))?,
                destroy: table.destroy.ok_or_else(|| missing("destroy"))?,
                free_buf: table.free_buf.ok_or_else(|| missing("free_buf"))?,
                fns: KindFns::Transport(TransportFns {
                    connect: table.connect.ok_or_else(|| missing("connect"))?,
                    send: table.send.ok_or_else(|| missing("send"))?,
                    close: table.close.ok_or_else(|| missing("close"))?,
                }),
                name,
                version,
            })
        }
        CHIME_PLUGIN_KIND_UPLOADER => {
            // SAFETY: as above.
            let table = unsafe { checked_vtable::<ChimeUploaderVTable>(vtable, path, &name)? };
            Ok(Checked {
                kind: PluginKind::Uploader,
                create: table.create.ok_or_else(|| missing("create"))?,
                destroy: table.destroy.ok_or_else(|| missing("destroy"))?,
                free_buf: table.free_buf.ok_or_else(|| missing("free_buf"))?,
                fns: KindFns::Uploader(UploaderFns {
                    upload: table.upload.ok_or_else(|| missing("upload"))?,
                    download: table.download.ok_or_else(|| missing("download"))?,
                    cancel: table.cancel.ok_or_else(|| missing("cancel"))?,
                }),
                name,
                version,
            })
        }
        CHIME_PLUGIN_KIND_TRANSLATOR => {
            // SAFETY: as above.
            let table = unsafe { checked_vtable::<ChimeTranslatorVTable>(vtable, path, &name)? };
            Ok(Checked {
                kind: PluginKind::Translator,
                create: table.create.ok_or_else(|| missing("create"))?,
                destroy: table.destroy.ok_or_else(|| missing("destroy"))?,
                free_buf: table.free_buf.ok_or_else(|| missing("free_buf"))?,
                fns: KindFns::Translator(TranslatorFns {
                    translate: table.translate.ok_or_else(|| missing("translate"))?,
                }),
                name,
                version,
            })
        }
        CHIME_PLUGIN_KIND_SPEECH_TO_TEXT => {
            // SAFETY: as above.
            let table = unsafe { checked_vtable::<ChimeSpeechToTextVTable>(vtable, path, &name)? };
            Ok(Checked {
                kind: PluginKind::SpeechToText,
                create: table.create.ok_or_else(|| missing("create"))?,
                destroy: table.destroy.ok_or_else(|| missing("destroy"))?,
                free_buf: table.free_buf.ok_or_else(|| missing("free_buf"))?,
                fns: KindFns::SpeechToText(SpeechFns {
                    convert: table.convert.ok_or_else(|| missing("convert"))?,
                }),
                name,
                version,
            })
        }
        other => Err(PluginError::UnsupportedKind {
            name,
            path: path.to_path_buf(),
            kind: other,
        }),
    }
}

/// Reads a vtable after checking its leading `struct_size`.
///
/// # Safety
/// `vtable` points at a static vtable of type `T` (whose first field is a `u32` size).
unsafe fn checked_vtable<'a, T>(
    vtable: *const c_void,
    path: &Path,
    name: &str,
) -> Result<&'a T, PluginError> {
    // SAFETY: every vtable starts with its `u32` size.
    let size = unsafe { vtable.cast::<u32>().read() } as usize;
    if size < std::mem::size_of::<T>() {
        return Err(invalid(
            path,
            format!("plugin {name}: vtable size {size} is too small"),
        ));
    }
    // SAFETY: size checked; static data.
    Ok(unsafe { &*vtable.cast::<T>() })
}

/// One instance made by a library's `create`; `destroy`ed when the last user drops it, which is
/// after every call on it has returned (each call holds an `Arc<Instance>`).
pub(crate) struct Instance {
    pub library: Arc<PluginLibrary>,
    handle: usize,
}

impl Instance {
    /// Wraps a handle `create` returned.
    pub fn new(library: Arc<PluginLibrary>, handle: *mut c_void) -> Self {
        Self {
            library,
            handle: handle as usize,
        }
    }

    /// The raw handle for calls.
    pub fn handle(&self) -> *mut c_void {
        self.handle as *mut c_void
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: the handle came from this library's `create` and this is the last user.
        unsafe { (self.library.destroy)(self.handle()) };
    }
}
