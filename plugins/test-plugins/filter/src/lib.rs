//! Test fixture: a content-filter plugin whose behaviour is chosen by its config, so the host's
//! tests can load a real `cdylib` that fails in each way a plugin can fail.
//!
//! Config: `{"mode": "ok" | "fail_on_call" | "panic_on_call" | "panic_on_create" | "fail_create"
//! | "hang", "hang_ms": 600000}`.
//!
//! In `ok` mode: a text containing `block` is blocked (reason `test block`); the text `instances`
//! is replaced by the number of live instances of this library created with the same `"tag"` config
//! value (which proves that two hosts share one loaded library); any other text is replaced by its upper-case form, except texts starting
//! with `pass`, which pass.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chime_plugin_api::{
    ContentFilter, ContentKind, Direction, FilterOutcome, PluginCallError, export_content_filter,
};

/// Instances alive in this library by tag (shared by every host in the process).
static LIVE: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

fn live() -> MutexGuard<'static, Option<HashMap<String, usize>>> {
    match LIVE.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    FailOnCall,
    PanicOnCall,
    Hang,
}

/// The configurable test filter.
#[derive(Debug)]
pub struct TestFilter {
    mode: Mode,
    hang: Duration,
    tag: String,
}

impl Drop for TestFilter {
    fn drop(&mut self) {
        if let Some(count) = live().get_or_insert_with(HashMap::new).get_mut(&self.tag) {
            *count -= 1;
        }
    }
}

impl ContentFilter for TestFilter {
    fn create(config_json: &str) -> Result<Self, PluginCallError> {
        let config: serde_json::Value = serde_json::from_str(config_json)
            .map_err(|error| PluginCallError::invalid(format!("bad config: {error}")))?;
        let mode = match config
            .get("mode")
            .and_then(|mode| mode.as_str())
            .unwrap_or("ok")
        {
            "ok" => Mode::Ok,
            "fail_on_call" => Mode::FailOnCall,
            "panic_on_call" => Mode::PanicOnCall,
            "hang" => Mode::Hang,
            "panic_on_create" => panic!("test plugin panics in create"),
            "fail_create" => {
                return Err(PluginCallError::invalid("test plugin refuses its config"));
            }
            other => return Err(PluginCallError::invalid(format!("unknown mode {other}"))),
        };
        let hang_ms = config
            .get("hang_ms")
            .and_then(|ms| ms.as_u64())
            .unwrap_or(600_000);
        let tag = config
            .get("tag")
            .and_then(|tag| tag.as_str())
            .unwrap_or("")
            .to_owned();
        *live()
            .get_or_insert_with(HashMap::new)
            .entry(tag.clone())
            .or_insert(0) += 1;
        Ok(Self {
            mode,
            hang: Duration::from_millis(hang_ms),
            tag,
        })
    }

    fn filter(
        &self,
        text: &str,
        _direction: Direction,
        _content: ContentKind,
    ) -> Result<FilterOutcome, PluginCallError> {
        match self.mode {
            Mode::FailOnCall => Err(PluginCallError::failed("test plugin fails every call")),
            Mode::PanicOnCall => panic!("test plugin panics on every call"),
            Mode::Hang => {
                std::thread::sleep(self.hang);
                Ok(FilterOutcome::Pass)
            }
            Mode::Ok if text.contains("block") => Ok(FilterOutcome::Blocked {
                reason: "test block".to_owned(),
            }),
            Mode::Ok if text == "instances" => {
                let count = live()
                    .as_ref()
                    .and_then(|live| live.get(&self.tag).copied());
                Ok(FilterOutcome::Replaced(count.unwrap_or(0).to_string()))
            }
            Mode::Ok if text.starts_with("pass") => Ok(FilterOutcome::Pass),
            Mode::Ok => Ok(FilterOutcome::Replaced(text.to_uppercase())),
        }
    }
}

export_content_filter!(TestFilter, "test-filter");
