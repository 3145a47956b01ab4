//! The host's handle to a content-filter plugin.

use std::sync::Arc;

use crate::abi::{
    CHIME_CONTENT_CUSTOM_DESCRIPTION, CHIME_CONTENT_TEXT, CHIME_FILTER_BLOCKED,
    CHIME_FILTER_INCOMING, CHIME_FILTER_OUTGOING, CHIME_FILTER_PASS, CHIME_FILTER_REPLACED,
    ChimeBuf, ChimeFilterResult, ChimeStr,
};
use crate::host::library::FilterFns;
use crate::host::{PluginError, PluginInfo, Shared, call};
use crate::plugin::{ContentKind, Direction, FilterOutcome};

/// A loaded content filter. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct ContentFilterPlugin {
    pub(crate) shared: Arc<Shared>,
    fns: FilterFns,
}

impl std::fmt::Debug for ContentFilterPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ContentFilterPlugin")
            .field(&self.shared.library.name)
            .finish()
    }
}

impl ContentFilterPlugin {
    pub(crate) fn new(shared: Arc<Shared>, fns: FilterFns) -> Self {
        Self { shared, fns }
    }

    /// Name, kind, version, path and health.
    pub fn info(&self) -> PluginInfo {
        self.shared.info()
    }

    /// Judges `text` on a call thread, with the host's call timeout. A blocked outcome is not an
    /// error (the engine answers 80001); errors mean the filter itself failed.
    pub async fn filter(
        &self,
        text: &str,
        direction: Direction,
        content: ContentKind,
    ) -> Result<FilterOutcome, PluginError> {
        let shared = Arc::clone(&self.shared);
        let filter = self.fns.filter;
        let text = text.to_owned();
        let timeout = self.shared.config.call_timeout;
        self.shared
            .runner
            .call(timeout, move || {
                let library = &shared.library;
                let mut result = ChimeFilterResult {
                    action: CHIME_FILTER_PASS,
                    text: ChimeBuf::EMPTY,
                };
                let mut error = ChimeBuf::EMPTY;
                let direction = match direction {
                    Direction::Outgoing => CHIME_FILTER_OUTGOING,
                    Direction::Incoming => CHIME_FILTER_INCOMING,
                };
                let content = match content {
                    ContentKind::Text => CHIME_CONTENT_TEXT,
                    ContentKind::CustomDescription => CHIME_CONTENT_CUSTOM_DESCRIPTION,
                    ContentKind::Other(value) => value,
                };
                // SAFETY: `filter` per the ABI: live instance (held by `shared`), borrowed text,
                // writable out-pointers.
                let status = unsafe {
                    filter(
                        shared.instance.handle(),
                        ChimeStr::from_bytes(text.as_bytes()),
                        direction,
                        content,
                        &mut result,
                        &mut error,
                    )
                };
                if let Err(error) = call::check_status(library, status, error) {
                    call::take_buf(library, result.text);
                    return Err(error);
                }
                match result.action {
                    CHIME_FILTER_PASS => {
                        call::take_buf(library, result.text);
                        Ok(FilterOutcome::Pass)
                    }
                    CHIME_FILTER_REPLACED => Ok(FilterOutcome::Replaced(call::take_text(
                        library,
                        result.text,
                    )?)),
                    CHIME_FILTER_BLOCKED => Ok(FilterOutcome::Blocked {
                        reason: call::take_text_lossy(library, result.text),
                    }),
                    other => {
                        call::take_buf(library, result.text);
                        Err(PluginError::InvalidResult {
                            name: library.name.clone(),
                            reason: format!("unknown filter action {other}"),
                        })
                    }
                }
            })
            .await
    }
}
