//! The plugin host (feature `host`): loads plugins by path, checks them, and calls them safely.
//!
//! The engine owns one [`PluginHost`] per engine instance. At `init_sdk` it calls
//! [`PluginHost::load_all`] with the configured `plugins: [{path, config}]`; every failure comes
//! back as a [`PluginError`] that names the plugin, and the engine goes on without that plugin.
//! Loaded plugins are then reached through typed handles ([`ContentFilterPlugin`],
//! [`TransportPlugin`], [`UploaderPlugin`], [`TranslatorPlugin`], [`SpeechToTextPlugin`]) whose async methods run the plugin call on the
//! plugin's own call threads with a timeout (see `runner`), so no actor ever blocks in plugin
//! code. [`PluginHost::loaded_plugins`] answers `get_loaded_plugins`.

mod call;
mod error;
mod filter;
mod info;
mod language;
mod library;
mod runner;
mod transport;
mod uploader;

use std::ffi::c_void;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use error::PluginError;
pub use filter::ContentFilterPlugin;
pub use info::{PluginInfo, PluginKind, PluginStatus};
pub use language::{SpeechToTextPlugin, TranslatorPlugin};
pub use transport::{TransportConnection, TransportEvent, TransportPlugin};
pub use uploader::{ProgressFn, UploaderPlugin};

use crate::abi::{ChimeBuf, ChimeStr};
use library::{Instance, KindFns, PluginLibrary};
use runner::{CallRunner, lock};

/// How the host runs plugin calls.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Timeout of one call (filter, connect, send, create at load). Default 5 s.
    pub call_timeout: Duration,
    /// Timeout of one upload or download. Default 10 min.
    pub transfer_timeout: Duration,
    /// Consecutive failures after which a plugin is disabled. Default 3.
    pub failure_threshold: u32,
    /// Call threads one plugin may have at once (busy or stuck); further calls wait in line
    /// (their timeout running). Default 16.
    pub max_call_threads: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(5),
            transfer_timeout: Duration::from_secs(600),
            failure_threshold: 3,
            max_call_threads: 16,
        }
    }
}

/// What every handle to one plugin instance shares.
pub(crate) struct Shared {
    pub library: Arc<PluginLibrary>,
    pub instance: Arc<Instance>,
    pub runner: Arc<CallRunner>,
    pub config: HostConfig,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: run the plugin's `destroy` on a call thread, never on the
        // dropper's (an actor, say), in case it blocks. Calls still in flight hold their own
        // reference, so `destroy` runs after the last of them.
        let instance = Arc::clone(&self.instance);
        self.runner.detach(move || drop(instance));
    }
}

impl Shared {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            name: self.library.name.clone(),
            kind: self.library.kind,
            version: self.library.version.clone(),
            path: self.library.path.clone(),
            status: self.runner.status(),
        }
    }
}

/// A loaded plugin: one instance of one library, typed by kind.
#[derive(Clone)]
#[non_exhaustive]
pub enum LoadedPlugin {
    /// A content filter.
    ContentFilter(ContentFilterPlugin),
    /// A transport.
    Transport(TransportPlugin),
    /// An uploader.
    Uploader(UploaderPlugin),
    /// A translator (ABI 1.1).
    Translator(TranslatorPlugin),
    /// A speech-to-text plugin (ABI 1.1).
    SpeechToText(SpeechToTextPlugin),
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LoadedPlugin").field(&self.info()).finish()
    }
}

impl LoadedPlugin {
    fn shared(&self) -> &Shared {
        match self {
            Self::ContentFilter(plugin) => &plugin.shared,
            Self::Transport(plugin) => &plugin.shared,
            Self::Uploader(plugin) => &plugin.shared,
            Self::Translator(plugin) => &plugin.shared,
            Self::SpeechToText(plugin) => &plugin.shared,
        }
    }

    /// Name, kind, version, path and health.
    pub fn info(&self) -> PluginInfo {
        self.shared().info()
    }

    /// Whether both come from the same loaded library (the process-wide registry shares one
    /// library between every host that loads the same path).
    pub fn shares_library_with(&self, other: &LoadedPlugin) -> bool {
        Arc::ptr_eq(&self.shared().library, &other.shared().library)
    }
}

/// One engine's plugins.
#[derive(Default)]
pub struct PluginHost {
    config: HostConfig,
    plugins: Mutex<Vec<LoadedPlugin>>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("config", &self.config)
            .field("plugins", &self.loaded_plugins())
            .finish()
    }
}

impl PluginHost {
    /// A host with no plugins yet.
    pub fn new(config: HostConfig) -> Self {
        Self {
            config,
            plugins: Mutex::new(Vec::new()),
        }
    }

    /// Loads the plugin at `path` and creates an instance with `config_json` (a JSON document;
    /// `{}` when there is no config). On success the plugin is also kept by this host.
    ///
    /// Errors name the plugin: [`PluginError::NotFound`], [`PluginError::LoadFailed`],
    /// [`PluginError::MissingSymbol`], [`PluginError::InvalidDeclaration`],
    /// [`PluginError::AbiMismatch`], [`PluginError::UnsupportedKind`],
    /// [`PluginError::InitFailed`].
    pub fn load(
        &self,
        path: impl AsRef<Path>,
        config_json: &str,
    ) -> Result<LoadedPlugin, PluginError> {
        let path = path.as_ref();
        let library = library::load_library(path)?;
        let runner = CallRunner::new(
            library.name.clone(),
            self.config.failure_threshold,
            self.config.max_call_threads,
        );
        let creating = Arc::clone(&library);
        let config = config_json.to_owned();
        let created = runner.call_blocking(self.config.call_timeout, move || {
            let mut handle: *mut c_void = std::ptr::null_mut();
            let mut error = ChimeBuf::EMPTY;
            // SAFETY: `create` per the ABI: borrowed config, writable out-pointers.
            let status = unsafe {
                (creating.create)(
                    ChimeStr::from_bytes(config.as_bytes()),
                    &mut handle,
                    &mut error,
                )
            };
            call::check_status(&creating, status, error)?;
            if handle.is_null() {
                return Err(PluginError::InvalidResult {
                    name: creating.name.clone(),
                    reason: "create returned a null instance".to_owned(),
                });
            }
            Ok(Instance::new(Arc::clone(&creating), handle))
        });
        let instance = created.map_err(|error| PluginError::InitFailed {
            name: library.name.clone(),
            path: path.to_path_buf(),
            message: match error {
                PluginError::CallFailed { message, .. } => message,
                PluginError::Panicked { message, .. } => message,
                other => other.to_string(),
            },
        })?;
        let shared = Arc::new(Shared {
            library: Arc::clone(&library),
            instance: Arc::new(instance),
            runner,
            config: self.config.clone(),
        });
        let plugin = match library.fns {
            KindFns::ContentFilter(fns) => {
                LoadedPlugin::ContentFilter(ContentFilterPlugin::new(shared, fns))
            }
            KindFns::Transport(fns) => LoadedPlugin::Transport(TransportPlugin::new(shared, fns)),
            KindFns::Uploader(fns) => LoadedPlugin::Uploader(UploaderPlugin::new(shared, fns)),
            KindFns::Translator(fns) => {
                LoadedPlugin::Translator(TranslatorPlugin::new(shared, fns))
            }
            KindFns::SpeechToText(fns) => {
                LoadedPlugin::SpeechToText(SpeechToTextPlugin::new(shared, fns))
            }
        };
        lock(&self.plugins).push(plugin.clone());
        Ok(plugin)
    }

    /// Loads every `(path, config_json)`; the ones that fail are skipped and their errors
    /// returned, in order, for the engine to report.
    pub fn load_all<I, P, C>(&self, specs: I) -> Vec<PluginError>
    where
        I: IntoIterator<Item = (P, C)>,
        P: AsRef<Path>,
        C: AsRef<str>,
    {
        specs
            .into_iter()
            .filter_map(|(path, config)| self.load(path, config.as_ref()).err())
            .collect()
    }

    /// Every loaded plugin (for `get_loaded_plugins`), in load order.
    pub fn loaded_plugins(&self) -> Vec<PluginInfo> {
        lock(&self.plugins).iter().map(LoadedPlugin::info).collect()
    }

    /// The content filters, in load order (the engine applies them in turn).
    pub fn content_filters(&self) -> Vec<ContentFilterPlugin> {
        lock(&self.plugins)
            .iter()
            .filter_map(|plugin| match plugin {
                LoadedPlugin::ContentFilter(filter) => Some(filter.clone()),
                _ => None,
            })
            .collect()
    }

    /// The transport plugin named `name` (the engine config's `transport`).
    pub fn transport(&self, name: &str) -> Option<TransportPlugin> {
        lock(&self.plugins).iter().find_map(|plugin| match plugin {
            LoadedPlugin::Transport(transport) if transport.shared.library.name == name => {
                Some(transport.clone())
            }
            _ => None,
        })
    }

    /// The first translator plugin (`translate_text`).
    pub fn translator(&self) -> Option<TranslatorPlugin> {
        lock(&self.plugins).iter().find_map(|plugin| match plugin {
            LoadedPlugin::Translator(translator) => Some(translator.clone()),
            _ => None,
        })
    }

    /// The first speech-to-text plugin (`convert_voice_to_text`).
    pub fn speech_to_text(&self) -> Option<SpeechToTextPlugin> {
        lock(&self.plugins).iter().find_map(|plugin| match plugin {
            LoadedPlugin::SpeechToText(speech) => Some(speech.clone()),
            _ => None,
        })
    }

    /// The first uploader plugin.
    pub fn uploader(&self) -> Option<UploaderPlugin> {
        lock(&self.plugins).iter().find_map(|plugin| match plugin {
            LoadedPlugin::Uploader(uploader) => Some(uploader.clone()),
            _ => None,
        })
    }
}
