//! Two hosts (two engines) in one process share one loaded library, with their own instances.

use chime_plugin_api::host::{HostConfig, LoadedPlugin, PluginHost};
use chime_plugin_api::{ContentKind, Direction, FilterOutcome};

use crate::support::plugin_path;

async fn filter(plugin: &LoadedPlugin, text: &str) -> FilterOutcome {
    let LoadedPlugin::ContentFilter(filter) = plugin else {
        panic!("not a filter")
    };
    filter
        .filter(text, Direction::Outgoing, ContentKind::Text)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_hosts_share_one_library_and_outlive_each_other() {
    let path = plugin_path("chime_test_filter");
    // The tag keeps this test's instance count apart from other tests in the same process.
    let config = r#"{"mode": "ok", "tag": "sharing"}"#;
    let first = PluginHost::new(HostConfig::default());
    let second = PluginHost::new(HostConfig::default());
    let a = first.load(&path, config).unwrap();
    let b = second.load(&path, config).unwrap();
    assert!(a.shares_library_with(&b));
    assert_eq!(a.info().path, b.info().path);

    // Both instances live in the one library: its static state counts both.
    assert_eq!(
        filter(&a, "instances").await,
        FilterOutcome::Replaced("2".to_owned())
    );
    assert_eq!(
        filter(&b, "instances").await,
        FilterOutcome::Replaced("2".to_owned())
    );

    drop(a);
    drop(first);
    // The first engine's instance is destroyed (on a plugin call thread, so wait for it, bounded);
    // the library stays loaded for the second.
    let mut count = filter(&b, "instances").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if count == FilterOutcome::Replaced("1".to_owned()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        count = filter(&b, "instances").await;
    }
    assert_eq!(count, FilterOutcome::Replaced("1".to_owned()));
    assert_eq!(
        filter(&b, "hi").await,
        FilterOutcome::Replaced("HI".to_owned())
    );
}
