//! Plugins that fail, panic or hang degrade their own capability and nothing else.

use std::time::Duration;

use chime_plugin_api::host::{ContentFilterPlugin, LoadedPlugin, PluginError, PluginHost};
use chime_plugin_api::{ContentKind, Direction, FilterOutcome};

use crate::support::{GENEROUS, host_with_timeout, plugin_path};

fn load_filter(host: &PluginHost, mode: &str) -> ContentFilterPlugin {
    let config = serde_json::json!({"mode": mode, "hang_ms": 60_000}).to_string();
    match host
        .load(plugin_path("chime_test_filter"), &config)
        .unwrap()
    {
        LoadedPlugin::ContentFilter(filter) => filter,
        other => panic!("expected a content filter, got {other:?}"),
    }
}

async fn call(filter: &ContentFilterPlugin, text: &str) -> Result<FilterOutcome, PluginError> {
    filter
        .filter(text, Direction::Outgoing, ContentKind::Text)
        .await
}

#[tokio::test]
async fn a_working_test_filter_answers_each_outcome() {
    let host = host_with_timeout(GENEROUS);
    let filter = load_filter(&host, "ok");
    assert_eq!(
        call(&filter, "hello").await.unwrap(),
        FilterOutcome::Replaced("HELLO".to_owned())
    );
    assert_eq!(call(&filter, "pass me").await.unwrap(), FilterOutcome::Pass);
    assert_eq!(
        call(&filter, "please block").await.unwrap(),
        FilterOutcome::Blocked {
            reason: "test block".to_owned()
        }
    );
}

#[tokio::test]
async fn a_plugin_that_panics_on_every_call_answers_errors_then_is_disabled() {
    let host = host_with_timeout(GENEROUS);
    let filter = load_filter(&host, "panic_on_call");
    for _ in 0..3 {
        let error = call(&filter, "hello").await.unwrap_err();
        assert_eq!(
            error,
            PluginError::Panicked {
                name: "test-filter".to_owned(),
                message: "plugin panicked: test plugin panics on every call".to_owned(),
            }
        );
    }
    let error = call(&filter, "hello").await.unwrap_err();
    assert_eq!(
        error,
        PluginError::Disabled {
            name: "test-filter".to_owned(),
            failures: 3,
            last_error:
                "plugin test-filter: panicked: plugin panicked: test plugin panics on every call"
                    .to_owned(),
        }
    );
    let status = &host.loaded_plugins()[0].status;
    assert!(status.disabled);
    assert_eq!(status.total_failures, 3);
    // The process and other plugins are fine.
    let healthy = load_filter(&host, "ok");
    assert_eq!(
        call(&healthy, "still").await.unwrap(),
        FilterOutcome::Replaced("STILL".to_owned())
    );
}

#[tokio::test]
async fn a_plugin_returning_errors_is_disabled_after_the_threshold() {
    let host = host_with_timeout(GENEROUS);
    let filter = load_filter(&host, "fail_on_call");
    for _ in 0..3 {
        assert_eq!(
            call(&filter, "x").await.unwrap_err(),
            PluginError::CallFailed {
                name: "test-filter".to_owned(),
                status: chime_plugin_api::abi::CHIME_STATUS_FAILED,
                message: "test plugin fails every call".to_owned(),
            }
        );
    }
    assert!(matches!(
        call(&filter, "x").await.unwrap_err(),
        PluginError::Disabled { failures: 3, .. }
    ));
}

#[tokio::test]
async fn a_hanging_plugin_times_out_without_blocking_the_caller() {
    let host = host_with_timeout(Duration::from_millis(500));
    let filter = load_filter(&host, "hang");
    let started = std::time::Instant::now();
    let error = call(&filter, "x").await.unwrap_err();
    assert_eq!(
        error,
        PluginError::TimedOut {
            name: "test-filter".to_owned(),
            timeout: Duration::from_millis(500)
        }
    );
    // Bounded: the caller got its answer long before the plugin's 60 s hang ends.
    assert!(started.elapsed() < Duration::from_secs(30));
    let status = &host.loaded_plugins()[0].status;
    assert_eq!(status.consecutive_failures, 1);
    assert!(!status.disabled);
    // The caller's runtime stays responsive while the plugin thread is stuck.
    let tick = tokio::time::timeout(Duration::from_secs(5), tokio::task::yield_now()).await;
    assert!(tick.is_ok());
}

#[tokio::test]
async fn a_success_resets_the_failure_count() {
    let host = host_with_timeout(GENEROUS);
    let filter = load_filter(&host, "ok");
    assert!(call(&filter, "fine").await.is_ok());
    assert_eq!(host.loaded_plugins()[0].status.consecutive_failures, 0);
    assert_eq!(host.loaded_plugins()[0].status.last_error, None);
}

#[tokio::test]
async fn a_burst_beyond_the_thread_cap_waits_in_line_and_all_succeed() {
    let host = host_with_timeout(GENEROUS); // at most 8 call threads
    let filter = load_filter(&host, "ok");
    let calls: Vec<_> = (0..40)
        .map(|index| {
            let filter = filter.clone();
            tokio::spawn(async move { call(&filter, &format!("message {index}")).await })
        })
        .collect();
    for (index, call) in calls.into_iter().enumerate() {
        assert_eq!(
            call.await.unwrap().unwrap(),
            FilterOutcome::Replaced(format!("MESSAGE {index}"))
        );
    }
    assert_eq!(host.loaded_plugins()[0].status.total_failures, 0);
}
