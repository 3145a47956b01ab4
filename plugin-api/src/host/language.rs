//! The host's handles to the language kinds (ABI 1.1): [`TranslatorPlugin`] and
//! [`SpeechToTextPlugin`].
//!
//! A real translator or recogniser calls a web service, so each call runs on the plugin's call
//! threads (never the caller's) with the host's call timeout, like every plugin call. The JSON
//! that crosses the boundary is written and read by `crate::language`, the same functions the
//! plugin glue uses; a result of the wrong shape is [`PluginError::InvalidResult`].

use std::sync::Arc;

use crate::abi::{ChimeBuf, ChimeStr};
use crate::host::library::{PluginLibrary, SpeechFns, TranslatorFns};
use crate::host::{PluginError, PluginInfo, Shared, call};
use crate::language::{
    TranslateRequest, convert_options_json, convert_result_from_json, translate_result_from_json,
};

fn invalid_result(library: &PluginLibrary, reason: String) -> PluginError {
    PluginError::InvalidResult {
        name: library.name.clone(),
        reason,
    }
}

/// A loaded translator. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct TranslatorPlugin {
    pub(crate) shared: Arc<Shared>,
    fns: TranslatorFns,
}

impl std::fmt::Debug for TranslatorPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TranslatorPlugin")
            .field(&self.shared.library.name)
            .finish()
    }
}

impl TranslatorPlugin {
    pub(crate) fn new(shared: Arc<Shared>, fns: TranslatorFns) -> Self {
        Self { shared, fns }
    }

    /// Name, kind, version, path and health.
    pub fn info(&self) -> PluginInfo {
        self.shared.info()
    }

    /// Translates `request.texts`; answers one translation per text, in order.
    pub async fn translate(&self, request: TranslateRequest) -> Result<Vec<String>, PluginError> {
        let shared = Arc::clone(&self.shared);
        let translate = self.fns.translate;
        let timeout = self.shared.config.call_timeout;
        self.shared
            .runner
            .call(timeout, move || {
                let library = &shared.library;
                let request_json = request.to_json();
                let mut result = ChimeBuf::EMPTY;
                let mut error = ChimeBuf::EMPTY;
                // SAFETY: `translate` per the ABI: live instance (held by `shared`), borrowed
                // request, writable out-pointers.
                let status = unsafe {
                    translate(
                        shared.instance.handle(),
                        ChimeStr::from_bytes(request_json.as_bytes()),
                        &mut result,
                        &mut error,
                    )
                };
                let json = call::take_result(library, status, error, result)?;
                translate_result_from_json(&json, request.texts.len())
                    .map_err(|reason| invalid_result(library, reason))
            })
            .await
    }
}

/// A loaded speech-to-text plugin. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct SpeechToTextPlugin {
    pub(crate) shared: Arc<Shared>,
    fns: SpeechFns,
}

impl std::fmt::Debug for SpeechToTextPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SpeechToTextPlugin")
            .field(&self.shared.library.name)
            .finish()
    }
}

impl SpeechToTextPlugin {
    pub(crate) fn new(shared: Arc<Shared>, fns: SpeechFns) -> Self {
        Self { shared, fns }
    }

    /// Name, kind, version, path and health.
    pub fn info(&self) -> PluginInfo {
        self.shared.info()
    }

    /// Recognises the speech in the local file `audio_path`, in `language` (`None`: the
    /// plugin's default); answers the text.
    pub async fn convert(
        &self,
        audio_path: &str,
        language: Option<&str>,
    ) -> Result<String, PluginError> {
        let shared = Arc::clone(&self.shared);
        let convert = self.fns.convert;
        let timeout = self.shared.config.call_timeout;
        let path = audio_path.to_owned();
        let options = convert_options_json(language);
        self.shared
            .runner
            .call(timeout, move || {
                let library = &shared.library;
                let mut result = ChimeBuf::EMPTY;
                let mut error = ChimeBuf::EMPTY;
                // SAFETY: `convert` per the ABI: live instance, borrowed path and options,
                // writable out-pointers.
                let status = unsafe {
                    convert(
                        shared.instance.handle(),
                        ChimeStr::from_bytes(path.as_bytes()),
                        ChimeStr::from_bytes(options.as_bytes()),
                        &mut result,
                        &mut error,
                    )
                };
                let json = call::take_result(library, status, error, result)?;
                convert_result_from_json(&json).map_err(|reason| invalid_result(library, reason))
            })
            .await
    }
}
